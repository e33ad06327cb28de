// Starts GraphiQL on Tandem's own page. It is a file rather than an inline <script> because
// the page's Content-Security-Policy allows scripts from 'self' only (see app/graphiql.py).
(function () {
  "use strict";

  // What a newcomer sees first: a query that works once a token is in the Headers tab.
  var DEFAULT_QUERY = [
    "# Welcome to Tandem. Press \"Sign in\" above (demo@tandem.local / tandem-demo), or paste a",
    "# token after \"Bearer \" in the Headers tab below; then press the run button.",
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

  // --- Sign-in: OAuth 2 authorization code + PKCE (S256) with the public client GraphiQL is given.
  // Tokens live in this page's memory only: never in localStorage or sessionStorage, so they end
  // with the tab. Only the PKCE verifier and state wait in sessionStorage across the redirect.
  var clientId = root.getAttribute("data-oauth-client-id") || "";
  var SCOPES = "openid profile email tasks:read tasks:write documents:read documents:write admin";
  var PENDING_KEY = "tandem:oauth:pending";
  var auth = { accessToken: null, refreshToken: null, name: null, refreshTimer: null };
  var bar = document.getElementById("tandem-auth");
  var statusText = document.getElementById("tandem-auth-status");
  var signInButton = document.getElementById("tandem-sign-in");
  var signOutButton = document.getElementById("tandem-sign-out");

  function base64url(bytes) {
    var text = "";
    bytes.forEach(function (byte) {
      text += String.fromCharCode(byte);
    });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString() {
    return base64url(window.crypto.getRandomValues(new Uint8Array(32)));
  }

  function redirectUri() {
    return window.location.origin + url.pathname;
  }

  function showStatus(text) {
    statusText.textContent = text;
    signInButton.hidden = !!auth.accessToken || !clientId;
    signOutButton.hidden = !auth.accessToken;
  }

  function signIn() {
    var verifier = randomString();
    var state = randomString();
    window.sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier: verifier, state: state }));
    window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (digest) {
      var query = new URLSearchParams({
        response_type: "code",
        client_id: clientId,
        redirect_uri: redirectUri(),
        scope: SCOPES,
        state: state,
        code_challenge: base64url(new Uint8Array(digest)),
        code_challenge_method: "S256",
      });
      window.location.assign("/oauth/authorize?" + query.toString());
    });
  }

  function tokenRequest(fields) {
    return fetch("/oauth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(Object.assign({ client_id: clientId }, fields)).toString(),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw new Error(body.error_description || body.error || "HTTP " + response.status);
        }
        return body;
      });
    });
  }

  function nameFrom(idToken) {
    try {
      var payload = idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var bytes = Uint8Array.from(atob(payload), function (c) {
        return c.charCodeAt(0);
      });
      return JSON.parse(new TextDecoder().decode(bytes)).name || null;
    } catch (error) {
      return null;
    }
  }

  function keep(token) {
    auth.accessToken = token.access_token;
    auth.refreshToken = token.refresh_token || null;
    auth.name = (token.id_token && nameFrom(token.id_token)) || auth.name;
    window.clearTimeout(auth.refreshTimer);
    if (auth.refreshToken && token.expires_in) {
      // Rotate a minute before expiry, so requests never carry an expired token.
      var delay = Math.max(5, token.expires_in - 60) * 1000;
      auth.refreshTimer = window.setTimeout(function () {
        tokenRequest({ grant_type: "refresh_token", refresh_token: auth.refreshToken }).then(keep, forget);
      }, delay);
    }
    showStatus("Signed in as " + (auth.name || "you") + ": the token is sent with every request.");
  }

  function forget() {
    window.clearTimeout(auth.refreshTimer);
    auth.accessToken = auth.refreshToken = auth.name = null;
    showStatus("Not signed in: requests run anonymously.");
  }

  function signOut() {
    var refreshToken = auth.refreshToken;
    forget();
    if (refreshToken) {
      fetch("/oauth/revoke", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: refreshToken, token_type_hint: "refresh_token", client_id: clientId }).toString(),
      });
    }
  }

  // Back from /oauth/authorize: check state, trade the code for tokens, clean the address bar.
  function completeSignIn() {
    var query = new URLSearchParams(window.location.search);
    if (!query.has("code") && !query.has("error")) {
      forget();
      return;
    }
    var pending = JSON.parse(window.sessionStorage.getItem(PENDING_KEY) || "null");
    window.sessionStorage.removeItem(PENDING_KEY);
    window.history.replaceState(null, "", url.pathname);
    if (query.has("error")) {
      showStatus("Sign-in did not complete: " + (query.get("error_description") || query.get("error")));
    } else if (!pending || pending.state !== query.get("state")) {
      showStatus("Sign-in did not complete: the response does not belong to this tab.");
    } else {
      showStatus("Signing in…");
      tokenRequest({
        grant_type: "authorization_code",
        code: query.get("code"),
        redirect_uri: redirectUri(),
        code_verifier: pending.verifier,
      }).then(keep, function (error) {
        forget();
        showStatus("Sign-in failed: " + error.message);
      });
    }
  }

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
    var headers = requestHeaders(options && options.headers);
    // A token typed into the headers editor wins; otherwise the signed-in token goes along.
    if (auth.accessToken && !headers.authorization) {
      headers.authorization = "Bearer " + auth.accessToken;
    }
    if (params && params.operationName === "IntrospectionQuery" && typeof params.query === "string") {
      params = Object.assign({}, params, { query: shallowIntrospection(params.query) });
    }
    return fetchGraphQL(params, Object.assign({}, options, { headers: headers }));
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
  document.body.style.display = "flex";
  document.body.style.flexDirection = "column";
  root.style.flex = "1";
  root.style.minHeight = "0";
  bar.style.display = "flex";
  bar.style.alignItems = "center";
  bar.style.gap = "12px";
  bar.style.padding = "6px 12px";
  bar.style.font = "14px system-ui, sans-serif";
  bar.style.borderBottom = "1px solid #ddd";
  bar.hidden = false;
  signInButton.addEventListener("click", signIn);
  signOutButton.addEventListener("click", signOut);
  completeSignIn();
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
