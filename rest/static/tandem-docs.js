// Starts Swagger UI on /docs. Our own file, not an inline script: the page's CSP allows none.
// The spec URL comes from a data- attribute for the same reason.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  root.textContent = "";
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    layout: "BaseLayout",
    deepLinking: false,
    // Never send the description to the public validator service (or anywhere else).
    validatorUrl: null,
    // Tokens typed into "Authorize" live only as long as the page.
    persistAuthorization: false,
    defaultModelsExpandDepth: 1,
  });
})();
