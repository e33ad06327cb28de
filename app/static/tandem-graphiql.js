// Starts GraphiQL on Tandem's own page. It is a file rather than an inline <script> because
// the page's Content-Security-Policy allows scripts from 'self' only (see app/graphiql.py).
(function () {
  "use strict";

  // What a newcomer sees first: a query that works once a token is in the Headers tab.
  var DEFAULT_QUERY = [
    "# Welcome to Tandem. Mint a token:  .venv/bin/tandem token --email demo@tandem.local",
    "# paste it after \"Bearer \" in the Headers tab below, then press the run button.",
    "{",
    "  viewer {",
    "    name",
    "    tasks(first: 10) {",
    "      totalCount",
    "      edges { node { id title status priority dueAt assignee { name } document { title } } }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");


  var root = document.getElementById("graphiql");
  var endpoint = root.getAttribute("data-endpoint") || "/graphql";
  var url = new URL(endpoint, window.location.href);
  var wsUrl = new URL(url.href);
  wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  // A template the user completes by pasting a token after "Bearer ".
  var HEADERS_TEMPLATE = '{\n  "Authorization": "Bearer "\n}';

  // Lower-case keys so the editor's "Content-Type" cannot duplicate the fetcher's
  // "content-type" (fetch would join both into one invalid value), and drop the untouched
  // template: "Bearer " without a token would make every request, introspection too, fail
  // authentication instead of running anonymously.
  function requestHeaders(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      var key = name.toLowerCase();
      if (key === "authorization" && /^\s*bearer\s*$/i.test(String(value))) {
        return;
      }
      out[key] = value;
    });
    return out;
  }

  var fetchGraphQL = GraphiQL.createFetcher({
    url: url.href,
    // The graphql-transport-ws client gets the editor's headers as its connection_init payload.
    subscriptionUrl: wsUrl.href,
    // Plain JSON responses only: Tandem does not answer multipart/mixed.
    enableIncrementalDelivery: false,
    headers: {
      accept: "application/graphql-response+json, application/json",
      "content-type": "application/json",
    },
  });

  // Tandem refuses queries nested more than 10 fields deep, introspection included (README: "Rate
  // limits and query cost"). GraphiQL's introspection query nests `ofType` 9 times (15 fields in
  // all); Tandem's deepest type reference, [String!]!, needs 3, so ask for 4 and stay within 10.
  var TYPE_REF_DEPTH = 4;

  function shallowIntrospection(query) {
    var start = query.indexOf("fragment TypeRef on __Type");
    if (start === -1) {
      return query;
    }
    var typeRef = "kind name";
    for (var level = 0; level < TYPE_REF_DEPTH; level++) {
      typeRef = "kind name ofType { " + typeRef + " }";
    }
    // TypeRef is the last fragment of the query GraphiQL builds.
    return query.slice(0, start) + "fragment TypeRef on __Type { " + typeRef + " }\n";
  }

  function fetcher(params, options) {
    var opts = Object.assign({}, options, { headers: requestHeaders(options && options.headers) });
    if (params && params.operationName === "IntrospectionQuery" && typeof params.query === "string") {
      params = Object.assign({}, params, { query: shallowIntrospection(params.query) });
    }
    return fetchGraphQL(params, opts);
  }

  // GraphiQL 3 writes each history entry with its headers to localStorage even when
  // shouldPersistHeaders is false, which would keep a pasted bearer token after the tab is
  // closed. This storage blanks them on the way in; everything else passes through.
  var NAMESPACE = "graphiql:";
  var HISTORY_KEYS = [NAMESPACE + "queries", NAMESPACE + "favorites"];

  function historyWithoutHeaders(value) {
    var lists = JSON.parse(value);
    Object.keys(lists).forEach(function (name) {
      (lists[name] || []).forEach(function (entry) {
        entry.headers = null;
      });
    });
    return JSON.stringify(lists);
  }

  function graphiqlKeys() {
    return Object.keys(window.localStorage).filter(function (key) {
      return key.indexOf(NAMESPACE) === 0;
    });
  }

  var storage = {
    getItem: function (key) {
      return window.localStorage.getItem(key);
    },
    setItem: function (key, value) {
      var safe = HISTORY_KEYS.indexOf(key) === -1 ? value : historyWithoutHeaders(value);
      window.localStorage.setItem(key, safe);
    },
    removeItem: function (key) {
      window.localStorage.removeItem(key);
    },
    get length() {
      return graphiqlKeys().length;
    },
    clear: function () {
      graphiqlKeys().forEach(function (key) {
        window.localStorage.removeItem(key);
      });
    },
  };

  // CSSOM writes are allowed by style-src 'self'; a style attribute or <style> block is not.
  document.documentElement.style.height = "100%";
  document.body.style.height = "100%";
  document.body.style.margin = "0";
  root.style.height = "100vh";
  root.textContent = "";

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      storage: storage,
      defaultHeaders: HEADERS_TEMPLATE,
      defaultQuery: DEFAULT_QUERY,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: "headers",
      // Headers carry bearer tokens: keep them out of localStorage.
      shouldPersistHeaders: false,
    })
  );
})();
