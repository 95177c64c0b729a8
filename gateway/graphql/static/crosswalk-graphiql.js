// Starts GraphiQL with the tabs and headers the gateway wrote into the page.
(function () {
  "use strict";
  var config = JSON.parse(
    document.getElementById("crosswalk-graphiql-config").textContent
  );
  var url = window.location.href.split("?")[0].split("#")[0];
  var socket = new URL(url);
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: socket.toString(),
  });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultTabs: config.tabs,
      defaultHeaders: config.headers,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      // the key stays in this tab's memory, never in the browser's storage
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    })
  );
})();
