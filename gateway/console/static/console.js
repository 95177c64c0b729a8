// The Crosswalk operations console: plain DOM, GraphQL over fetch and
// graphql-transport-ws. The API key lives only in sessionStorage (this tab).
const KEY = "crosswalk.console.key";
const REFRESH_MS = 2000;
const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child ?? "");
  return node;
}

const auth = () => ({ Authorization: `Bearer ${sessionStorage.getItem(KEY)}` });

async function gql(query, variables = {}) {
  const answer = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...auth() },
    body: JSON.stringify({ query, variables }),
  });
  return { status: answer.status, ...(await answer.json()) };
}

// A panel whose field was refused (FORBIDDEN) is hidden and says why; true if refused.
function refused(panel, body) {
  const section = $(`#${panel}`);
  const error = (body.errors || [])[0];
  const forbidden = error && (error.extensions || {}).code === "FORBIDDEN";
  section.classList.toggle("refused", Boolean(forbidden));
  $(".why", section).textContent = error ? `${forbidden ? "Hidden: " : ""}${error.message}` : "";
  return Boolean(error);
}

// ------------------------------------------------------------------ systems
const SYSTEMS = `{ systems { system healthy healthDetail breaker queueDepth p50LatencyMs
  p99LatencyMs quota { callsLastMinute limitPerMinute used } sync { lagSeconds loaded }
  slo { ok } } }`;

const fmt = (n, unit = "") => (n === null || n === undefined ? "–" : `${Math.round(n)}${unit}`);

async function refreshSystems() {
  const body = await gql(SYSTEMS);
  if (refused("systems", body)) return;
  $("#systems .tiles").replaceChildren(...body.data.systems.map((s) => el("div", {
    class: `tile ${s.healthy === false ? "unhealthy" : "healthy"} breaker-${s.breaker}`,
    "data-system": s.system.toLowerCase(), "data-healthy": String(s.healthy), "data-breaker": s.breaker,
  }, el("h3", {}, s.system), el("dl", {},
    el("dt", {}, "health"), el("dd", {}, s.healthy === null ? "unknown" : s.healthy ? "healthy" : `down: ${s.healthDetail}`),
    el("dt", {}, "breaker"), el("dd", {}, s.breaker),
    el("dt", {}, "p50 / p99"), el("dd", {}, `${fmt(s.p50LatencyMs)} / ${fmt(s.p99LatencyMs, " ms")}`),
    el("dt", {}, "quota"), el("dd", { class: "quota" }, s.quota
      ? `${s.quota.callsLastMinute} / ${Math.round(s.quota.limitPerMinute)} a min (${Math.round(s.quota.used * 100)}%)`
      : "–"),
    el("dt", {}, "queue"), el("dd", {}, String(s.queueDepth)),
    el("dt", {}, "sync lag"), el("dd", {}, s.sync ? (s.sync.loaded ? fmt(s.sync.lagSeconds, " s") : "loading") : "–"),
    el("dt", {}, "SLO"), el("dd", {}, s.slo ? (s.slo.ok ? "ok" : "breached") : "–"),
  ))));
}

async function refreshSlo() {
  const answer = await fetch("/slo", { headers: auth() });
  const body = await answer.json();
  if (refused("slo", body)) return;
  const cell = (v) => el("td", {}, v === null ? "–" : String(v));
  $("#slo tbody").replaceChildren(...body.objectives.map((o) => el("tr", {},
    cell(o.scope), cell(o.name), cell(o.objective), cell(o.target), cell(o.value),
    cell(o.burn_rates["5m"]), cell(o.burn_rates["1h"]), cell(o.ok ? "yes" : "NO"))));
}

// ------------------------------------------------------------------- outbox
const OUTBOX = `{ outbox { pending dead oldestOpenAgeSeconds systems { system pending leased dead done } } }`;

async function refreshOutbox() {
  const body = await gql(OUTBOX);
  if (refused("outbox", body)) return;
  const box = body.data.outbox;
  const cell = (v) => el("td", {}, String(v));
  $("#outbox tbody").replaceChildren(...box.systems.map((r) => el("tr", { "data-system": r.system },
    cell(r.system), cell(r.pending), cell(r.leased), cell(r.dead), cell(r.done))));
  const age = box.oldestOpenAgeSeconds;
  $("#outbox .oldest").textContent = age === null
    ? "Nothing waiting for delivery."
    : `${box.pending} waiting; the oldest for ${age.toFixed(1)} s.`;
}

// ------------------------------------------------------------- dead letters
const DEAD = `{ deadLetters(first: 50) { items { id system step type customerId attempts reason } } }`;

async function act(query, variables) {
  const body = await gql(query, variables);
  $("#dead-letters .why").textContent = body.errors ? body.errors[0].message : "";
  await refreshDeadLetters();
}

async function refreshDeadLetters() {
  const body = await gql(DEAD);
  if (refused("dead-letters", body)) return;
  const items = body.data.deadLetters.items;
  $("#dead-letters .empty").hidden = items.length > 0;
  $("#dead-letters .list").replaceChildren(...items.map((d) => el("li", { "data-id": d.id },
    `#${d.id} ${d.type} → ${d.system} (customer ${d.customerId}, ${d.attempts} attempts): ${d.reason || ""}`,
    el("button", { class: "replay", onclick: () => act(
      "mutation($id: ID!) { replayDeadLetter(id: $id) { replayed } }", { id: d.id }) }, "Replay"),
    el("button", { class: "discard", onclick: () => {
      const reason = prompt(`Why discard dead letter #${d.id}? Nothing is undone in ${d.system}.`);
      if (reason) act("mutation($id: ID!, $r: String!) { discardDeadLetter(id: $id, reason: $r) { discarded } }",
        { id: d.id, r: reason });
    } }, "Discard"))));
}

// -------------------------------------------------------------------- trace
const TRACE = `query($c: String, $b: String) { trace(correlationId: $c, businessKey: $b) {
  id at actor action system subject outcome } }`;

async function searchTrace(event) {
  event.preventDefault();
  const form = event.target;
  const by = form.by.value;
  const body = await gql(TRACE, by === "correlationId" ? { c: form.value.value } : { b: form.value.value });
  const box = $("#trace .timeline");
  if (refused("trace", body)) return box.replaceChildren();
  const entries = body.data.trace;
  if (!entries.length) return box.replaceChildren(el("p", { class: "empty" }, "Nothing recorded."));
  const times = entries.map((e) => Date.parse(e.at));
  const first = Math.min(...times), span = Math.max(1, Math.max(...times) - first);
  const lanes = [...new Set(entries.map((e) => e.system || "gateway"))];
  const bad = (e) => e.outcome && !["ok", "succeeded", "skipped"].includes(e.outcome);
  box.replaceChildren(
    ...lanes.map((lane) => el("div", { class: "lane", "data-lane": lane }, el("span", { class: "name" }, lane),
      el("div", { class: "track" }, ...entries.filter((e) => (e.system || "gateway") === lane).map((e) =>
        el("span", { class: `mark${bad(e) ? " failed" : ""}`, title: `${e.at} ${e.action} ${e.subject} ${e.outcome || ""}`,
          style: `left: calc(${((Date.parse(e.at) - first) / span) * 100}% - .35rem)` }))))),
    el("p", { class: "note" }, `${entries.length} entries over ${span} ms`),
    el("ol", { class: "entries" }, ...entries.map((e) =>
      el("li", {}, `${e.at.slice(11, 23)} ${e.system || "gateway"} ${e.action} ${e.subject} ${e.outcome || ""}`))),
  );
}

// ----------------------------------------------------------- customer 360
const CUSTOMER = `query($id: ID!) { customer(id: $id) { id name
  freshness { system stale source ageSeconds reason } } }`;
const EVENTS = `subscription($id: ID!) { customerEvents(customerId: $id) {
  id type system time subject changedFields } }`;
let socket = null;

async function openCustomer(event) {
  event.preventDefault();
  const body = await gql(CUSTOMER, { id: event.target.id.value });
  if (refused("customer", body)) return;
  const customer = body.data.customer;
  const panel = $("#customer");
  $(".events", panel).replaceChildren();
  if (!customer) return $(".summary", panel).replaceChildren("No such customer.");
  $(".summary", panel).replaceChildren(el("strong", {}, customer.name || ""), ` ${customer.id}`);
  $(".badges", panel).replaceChildren(...customer.freshness.map((f) => el("span", {
    class: `badge${f.stale ? " stale" : ""}`, title: f.reason || "",
  }, `${f.system}: ${f.stale ? "stale" : "fresh"}${f.source ? ` (${f.source.toLowerCase()})` : ""}${f.ageSeconds === null ? "" : ` ${Math.round(f.ageSeconds)} s`}`)));
  follow(customer.id);
}

function follow(customerId) {
  if (socket) socket.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
    "graphql-transport-ws");
  socket = ws;
  const list = $("#customer .events");
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: auth() }));
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "events", type: "subscribe", payload: { query: EVENTS, variables: { id: customerId } } }));
      $("#customer").dataset.following = customerId;
    } else if (data.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    } else if (data.type === "next" && data.payload.data) {
      const e = data.payload.data.customerEvents;
      list.prepend(el("li", {}, `${e.time.slice(11, 19)} ${e.type} ${e.subject} [${e.changedFields.join(", ")}]`));
    } else if (data.type === "error" || (data.type === "next" && data.payload.errors)) {
      refused("customer", { errors: data.payload.errors || data.payload });
    }
  };
}

// -------------------------------------------------------------------- chaos
async function chaos(system, patch) {
  const answer = await fetch(`/console/chaos/${system}`, {
    method: "POST", headers: { "Content-Type": "application/json", ...auth() }, body: JSON.stringify(patch),
  });
  const body = await answer.json();
  if (!answer.ok) return refused("chaos", body.errors ? body : { errors: [{ message: body.error }] });
  $(`#chaos [data-system="${system}"] .state`).textContent = body.outage ? "outage" : "up";
}

async function setUpChaos() {
  const config = await (await fetch("/console/config.json")).json();
  const panel = $("#chaos");
  if (!config.sandbox) {
    panel.classList.add("refused");
    $(".why", panel).textContent = "Hidden: chaos needs the gateway in the sandbox profile.";
    return;
  }
  $(".body", panel).replaceChildren(...Object.entries(config.sandbox).map(([system, url]) =>
    el("div", { class: "chaos-row", "data-system": system }, el("strong", {}, system),
      el("span", { class: "note" }, url), el("span", { class: "state" }, "?"),
      el("button", { class: "outage-on", onclick: () => chaos(system, { outage: true }) }, "Outage on"),
      el("button", { class: "outage-off", onclick: () => chaos(system, { outage: false }) }, "Outage off"))));
}

// ------------------------------------------------------------------ sign-in
let timer = null;

async function start() {
  const probe = await gql("{ __typename }");
  if (probe.status === 401) {
    sessionStorage.removeItem(KEY);
    $("#sign-in-error").textContent = probe.errors[0].message;
    return;
  }
  $("#sign-in").hidden = true;
  $("#panels").hidden = false;
  $("#sign-out").hidden = false;
  await setUpChaos();
  const tick = () => Promise.allSettled([refreshSystems(), refreshOutbox(), refreshDeadLetters(), refreshSlo()]);
  await tick();
  timer = setInterval(tick, REFRESH_MS);
  document.body.dataset.ready = "true";
}

$("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#key").value);
  start();
});
$("#sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  clearInterval(timer);
  if (socket) socket.close();
  location.reload();
});
$("#trace form").addEventListener("submit", searchTrace);
$("#customer form").addEventListener("submit", openCustomer);
document.body.dataset.loaded = "true";
if (sessionStorage.getItem(KEY)) start();
