// The gammaxds dashboard. Plain JavaScript, no build step, no external resources: it polls the admin's JSON
// endpoints (/debug/status, /debug/graph, /debug/proxies) every second and redraws what changed.
// Everything shown comes from manifests and sidecars, so text is always set as text, never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const PRODUCER_VIEW = "*";
const XDS_TYPES = [
  ["CDS", "Cluster"],
  ["EDS", "ClusterLoadAssignment"],
  ["LDS", "Listener"],
  ["RDS", "RouteConfiguration"],
];
const SVG_NS = "http://www.w3.org/2000/svg";

// --- small DOM helpers ----------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function replace(id, ...nodes) {
  document.getElementById(id).replaceChildren(...nodes.flat());
}

function badge(text, tone, title) {
  return h("span", { class: `badge ${tone}`, title }, text);
}

// --- data ------------------------------------------------------------------------------------------------

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    return { error: reason };
  }
  return { data: body };
}

// The SPEC's format: {"objects": [...], "errors": [{file, document, kind, namespace, name, field, reason,
// inForce}], "warnings": [...]}. The older {"routes": [...], "errors": ["text"]} is read into the same shape.
function normaliseStatus(raw) {
  const data = raw || {};
  let objects = data.objects;
  if (!Array.isArray(objects)) {
    objects = (Array.isArray(data.routes) ? data.routes : []).map((r) => ({
      kind: r.kind, namespace: r.namespace, name: r.name, status: { parents: r.parents || [] },
    }));
  }
  const asProblem = (e) => (typeof e === "string" ? { reason: e } : e || {});
  return {
    objects,
    errors: (Array.isArray(data.errors) ? data.errors : []).map(asProblem),
    warnings: (Array.isArray(data.warnings) ? data.warnings : []).map(asProblem),
  };
}

function serviceOfParent(parentRef, object) {
  if (!parentRef || (parentRef.kind || "") !== "Service" || (parentRef.group || "") !== "") return null;
  return `${parentRef.namespace || object.namespace}/${parentRef.name}`;
}

// --- services and their routes ------------------------------------------------------------------------------

function conditionBadges(conditions) {
  return (conditions || []).map((c) => {
    const ok = c.type === "PartiallyInvalid" ? c.status !== "True" : c.status === "True";
    const label = c.status === "True" ? c.type : `${c.type}: ${c.reason || c.status}`;
    return badge(label, ok ? "ok" : "bad", c.message || c.reason || "");
  });
}

function conditionMessages(conditions) {
  return (conditions || [])
    .filter((c) => (c.type === "PartiallyInvalid" ? c.status === "True" : c.status !== "True") && c.message)
    .map((c) => h("span", { class: "message" }, `${c.type}: ${c.message}`));
}

function portText(ref) {
  if (ref.port !== undefined && ref.port !== null) return `port ${ref.port}`;
  if (ref.sectionName) return `port ${ref.sectionName}`;
  return "all ports";
}

function routeItem(object, parent, serviceNs) {
  const conditions = parent.conditions || [];
  const accepted = conditions.find((c) => c.type === "Accepted");
  const ref = parent.parentRef || {};
  const role = object.namespace === serviceNs ? "producer" : `consumer: clients in ${object.namespace}`;
  return h(
    "li",
    {
      class: "route",
      "data-route": `${object.kind} ${object.namespace}/${object.name}`,
      "data-accepted": accepted ? accepted.status : "Unknown",
    },
    badge(object.kind, "kind"),
    h("span", { class: "mono" }, `${object.namespace}/${object.name}`),
    " ",
    h("span", { class: "service-meta" }, `${portText(ref)}, ${role}`),
    " ",
    conditionBadges(conditions),
    conditionMessages(conditions),
  );
}

function renderServices(status, graph) {
  const services = new Map();
  for (const svc of (graph && graph.services) || []) services.set(svc.id, { svc, routes: [] });
  const others = [];
  for (const object of status.objects) {
    const parents = (object.status && object.status.parents) || [];
    let attached = false;
    for (const parent of parents) {
      const id = serviceOfParent(parent.parentRef, object);
      if (id === null) continue;
      attached = true;
      if (!services.has(id)) services.set(id, { svc: null, routes: [] });
      services.get(id).routes.push([object, parent]);
    }
    if (!attached) others.push(object);
  }
  const cards = [...services.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, { svc, routes }]) => {
      const [ns] = id.split("/");
      // Without the graph (not served yet) the Services are known only from the routes' parentRefs.
      const meta = svc
        ? [svc.clusterIP || "headless", ...(svc.ports || []).map((p) => `${p.port}${p.name ? "/" + p.name : ""}`)].join("  ")
        : graph ? "no such Service" : "";
      return h(
        "div",
        { class: "service", "data-service": id },
        h("span", { class: "service-name mono" }, id),
        h("span", { class: "service-meta" }, meta),
        routes.length
          ? h("ul", { class: "routes" }, routes.map(([object, parent]) => routeItem(object, parent, ns)))
          : h("div", { class: "hint" }, "no routes: requests go to its own endpoints"),
      );
    });
  replace("services", cards.length ? cards : h("p", { class: "empty" }, "no Services loaded"));

  const otherItems = others.map((object) => {
    const st = object.status || {};
    const conditions = [...(st.conditions || []), ...(st.parents || []).flatMap((p) => p.conditions || [])];
    return h(
      "li",
      { class: "route", "data-route": `${object.kind} ${object.namespace || ""}/${object.name}` },
      badge(object.kind, "kind"),
      h("span", { class: "mono" }, object.namespace ? `${object.namespace}/${object.name}` : object.name),
      " ",
      conditionBadges(conditions),
      conditionMessages(conditions),
    );
  });
  replace("others", otherItems.length ? [h("h3", {}, "Other objects"), h("ul", { class: "routes" }, otherItems)] : []);
}

// --- refused inputs ------------------------------------------------------------------------------------------

function objectText(e) {
  if ((!e.kind && !e.name) || e.kind === "?") return "";
  return `${e.kind || "?"} ${e.namespace ? e.namespace + "/" : ""}${e.name || "?"}`;
}

// What is used instead of a refused input: nothing, the last valid version, or another copy of the object.
function inForceBadge(inForce) {
  if (inForce === "previous version") return badge("previous version in force", "wait");
  if (inForce === "other copy") return badge("another copy in force", "wait");
  return badge("nothing in force", "bad");
}

function renderErrors(status) {
  const rows = status.errors.map((e) =>
    h(
      "tr",
      { class: "refused" },
      h("td", { class: "mono" }, objectText(e)),
      h("td", { class: "mono" }, e.file ? `${e.file}${e.document !== undefined && e.document !== null ? `, document ${e.document}` : ""}` : ""),
      h("td", { class: "mono" }, e.field || ""),
      h("td", { class: "reason" }, e.reason || ""),
      h("td", {}, inForceBadge(e.inForce)),
    ),
  );
  const warnings = status.warnings.map((w) => h("li", {}, [objectText(w), w.field, w.reason].filter(Boolean).join(": ")));
  replace(
    "errors",
    rows.length
      ? h("table", { class: "errors" },
          h("thead", {}, h("tr", {}, ["object", "file", "field", "reason", "in force"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
      : h("p", { class: "empty" }, "every input is in force"),
    warnings.length ? [h("h3", {}, "Warnings"), h("ul", {}, warnings)] : [],
  );
}

// --- sidecars ------------------------------------------------------------------------------------------------

function xdsState(info) {
  if (!info) return ["not requested", "wait"];
  if (info.error) return ["NACK", "bad"];
  if (info.synced) return ["ACK", "ok"];
  return info.sent_version ? ["waiting for ACK", "wait"] : ["not sent", "wait"];
}

function short(version) {
  return version ? String(version).slice(0, 8) : "-";
}

// The version sent, once when the client acknowledged it, else both.
function versionsText(info) {
  if (!info) return "";
  if (info.sent_version && info.sent_version === info.acked_version) return short(info.sent_version);
  return `sent ${short(info.sent_version)}, acked ${short(info.acked_version)}`;
}

function renderSidecars(proxies) {
  if (!proxies.length) {
    replace("sidecars", h("p", { class: "empty" }, "no sidecars connected"));
    return;
  }
  const rows = proxies.flatMap((p) => {
    const types = p.types || {};
    const states = XDS_TYPES.map(([, type]) => xdsState(types[type]));
    const overall = states.some(([t]) => t === "NACK") ? "NACK" : states.every(([t]) => t === "ACK") ? "ACK" : "waiting";
    const cells = XDS_TYPES.map(([label, type], i) => {
      const info = types[type];
      const [text, tone] = states[i];
      return h(
        "td",
        { "data-type": type },
        badge(text, tone, info && info.error ? info.error : ""),
        h("span", { class: "versions mono", title: `${type}: sent ${info ? info.sent_version : "-"}, acked ${info ? info.acked_version : "-"}` },
          versionsText(info)),
      );
    });
    const out = [
      h(
        "tr",
        { class: "sidecar", "data-node": p.node_id, "data-state": overall },
        h("td", {}, h("span", { class: "mono" }, p.node_id), h("span", { class: "versions" }, p.peer || "")),
        h("td", {}, p.namespace || ""),
        h("td", {}, p.capture || "", h("span", { class: "versions" }, p.protocol || "")),
        cells,
      ),
    ];
    const errors = XDS_TYPES.filter(([, type]) => types[type] && types[type].error);
    if (errors.length) {
      out.push(
        h("tr", { class: "nack" },
          h("td", { class: "nack-error", colspan: 3 + XDS_TYPES.length },
            errors.map(([label, type]) =>
              h("div", {}, `last NACK of ${label} (version ${short(types[type].error_version)}): ${types[type].error}`)))),
      );
    }
    return out;
  });
  replace(
    "sidecars",
    h("table", {},
      h("thead", {}, h("tr", {}, ["node", "namespace", "mode", ...XDS_TYPES.map(([l]) => l)].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)),
  );
}

// --- the routing graph ------------------------------------------------------------------------------------------

const NODE_W = 190;
const NODE_H = 40;
const COL_GAP = 150;
const ROW_GAP = 18;
const PAD = 16;

// Layers by longest path from the Services that are routed but not routed to; unrouted Services go first.
function layout(ids, edges, top) {
  const layer = new Map(ids.map((id) => [id, 0]));
  const links = edges.filter((e) => e.from !== e.to);
  for (let i = 0; i < ids.length; i++) {
    let changed = false;
    for (const e of links) {
      const next = Math.min(layer.get(e.from) + 1, ids.length);
      if (next > layer.get(e.to)) { layer.set(e.to, next); changed = true; }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const id of ids) (columns[layer.get(id)] ||= []).push(id);
  const pos = new Map();
  const row = new Map();
  columns.forEach((column, c) => {
    // Children sit near their parents: order by the mean row of the nodes that route to them.
    const weight = (id) => {
      const parents = links.filter((e) => e.to === id && row.has(e.from)).map((e) => row.get(e.from));
      return parents.length ? parents.reduce((a, b) => a + b, 0) / parents.length : -1;
    };
    column.sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
    column.forEach((id, r) => {
      row.set(id, r);
      pos.set(id, { x: PAD + c * (NODE_W + COL_GAP), y: top + r * (NODE_H + ROW_GAP + (top > PAD ? 24 : 0)) });  // room for loops
    });
  });
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * COL_GAP;
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const rowGap = ROW_GAP + (top > PAD ? 24 : 0);
  const height = top + PAD + rows * (NODE_H + rowGap) - rowGap;
  return { pos, width, height };
}

// One arrow per (from, to): its label lists each rule's share, e.g. "90%" or "100% · 10%".
function arrows(edges) {
  const totals = new Map();
  for (const e of edges) {
    const key = `${e.from}|${e.port}|${e.route}|${e.rule}`;
    totals.set(key, (totals.get(key) || 0) + e.weight);
  }
  const byPair = new Map();
  for (const e of edges) {
    const key = `${e.from}|${e.to}`;
    if (!byPair.has(key)) byPair.set(key, { from: e.from, to: e.to, valid: true, shares: [], details: [] });
    const a = byPair.get(key);
    const total = totals.get(`${e.from}|${e.port}|${e.route}|${e.rule}`);
    a.shares.push(total ? `${Math.round((100 * e.weight) / total)}%` : "0%");
    a.valid = a.valid && e.valid;
    a.details.push(`${e.route} rule ${e.rule}, port ${e.port} → ${e.to}:${e.backendPort}, weight ${e.weight}` +
      (e.valid ? "" : ` (invalid: ${e.problem})`));
  }
  return [...byPair.values()];
}

function bezier(t, p0, p1, p2, p3) {
  const u = 1 - t;
  return [0, 1].map((i) => u * u * u * p0[i] + 3 * u * u * t * p1[i] + 3 * u * t * t * p2[i] + t * t * t * p3[i]);
}

function renderGraph(graph, client) {
  if (!graph) {
    replace("graph", h("p", { class: "empty" }, "no graph yet"));
    return;
  }
  const edges = (graph.edges && (graph.edges[client] || graph.edges[PRODUCER_VIEW])) || [];
  const known = new Set((graph.services || []).map((svc) => svc.id));
  const ids = [...known];
  for (const e of edges) if (!known.has(e.to) && !ids.includes(e.to)) ids.push(e.to);
  if (!ids.length) {
    replace("graph", h("p", { class: "empty" }, "no Services loaded"));
    return;
  }
  // Loops are drawn above their node: room for them when there are any.
  const loops = edges.some((e) => e.from === e.to);
  const { pos, width, height } = layout(ids, edges, loops ? PAD + 26 : PAD);
  const routed = new Set(edges.map((e) => e.from));
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "routing graph" },
    s("defs", {},
      ["arrow", "arrow-bad"].map((id) =>
        s("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          s("path", { d: "M 0 0 L 10 5 L 0 10 z" })))));
  for (const a of arrows(edges)) {
    const p = pos.get(a.from);
    const q = pos.get(a.to);
    let d;
    let label;
    if (a.from === a.to) {
      // A route back to its own Service (e.g. a consumer route adding a timeout): a loop above the node.
      const x = p.x + NODE_W - 60;
      d = `M ${x} ${p.y} C ${x - 6} ${p.y - 30}, ${x + 46} ${p.y - 30}, ${x + 40} ${p.y - 1}`;
      label = { x: x + 48, y: p.y - 14, anchor: "start" };
    } else {
      const x1 = p.x + NODE_W, y1 = p.y + NODE_H / 2, x2 = q.x, y2 = q.y + NODE_H / 2;
      const bend = Math.max(40, Math.abs(x2 - x1) / 2);
      d = `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
      // On the curve, nearer the target than the source: arrows leaving one Service fan out by then.
      const at = bezier(0.72, [x1, y1], [x1 + bend, y1], [x2 - bend, y2], [x2, y2]);
      label = { x: at[0], y: at[1] - 6 };
    }
    svg.append(s("g", { class: a.valid ? "edge" : "edge invalid", "data-from": a.from, "data-to": a.to, "data-valid": String(a.valid) },
      s("title", {}, a.details.join("\n")),
      s("path", { d, "marker-end": `url(#${a.valid ? "arrow" : "arrow-bad"})` }),
      s("text", { x: label.x, y: label.y, "text-anchor": label.anchor || "middle" }, a.shares.join(" · "))));
  }
  for (const id of ids) {
    const { x, y } = pos.get(id);
    const [ns, ...rest] = id.split("/");
    const missing = !known.has(id);
    svg.append(s("g", { class: `node${missing ? " missing" : ""}${routed.has(id) ? " routed" : ""}`, "data-id": id },
      s("title", {}, missing ? `${id}: not a Service that exists` : id),
      s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { x: x + 10, y: y + 17 }, rest.join("/") || id),
      s("text", { x: x + 10, y: y + 32, class: "ns" }, missing ? `${ns} · missing` : ns)));
  }
  replace("graph", svg);
}

function renderClientSelector(graph) {
  const select = document.getElementById("client");
  const views = graph && graph.edges ? Object.keys(graph.edges) : [PRODUCER_VIEW];
  const wanted = views.join(",");
  if (select.dataset.views !== wanted) {
    const current = select.value || location.hash.slice(1) || PRODUCER_VIEW;
    select.replaceChildren(...views.map((v) =>
      h("option", { value: v }, v === PRODUCER_VIEW ? "any namespace (producer routes)" : `clients in ${v}`)));
    select.value = views.includes(current) ? current : PRODUCER_VIEW;
    select.dataset.views = wanted;
  }
  document.getElementById("client-label").hidden = views.length < 2;
  return select.value || PRODUCER_VIEW;
}

// --- the loop -------------------------------------------------------------------------------------------------

const last = { status: null, graph: null, proxies: null, client: null };

async function refresh() {
  const [status, graph, proxies] = await Promise.all(
    ["../debug/status", "../debug/graph", "../debug/proxies"].map((p) => getJSON(p).catch((err) => ({ error: String(err) }))),
  );
  const live = document.getElementById("live");
  const down = [status, graph, proxies].every((r) => r.error && r.error.startsWith("TypeError"));
  live.dataset.state = down ? "down" : "ok";
  live.textContent = down ? "admin unreachable" : `live · ${new Date().toLocaleTimeString()}`;
  if (down) return;

  const statusText = JSON.stringify(status);
  const graphText = JSON.stringify(graph);
  const client = renderClientSelector(graph.data);
  if (graphText !== last.graph || client !== last.client) {
    if (graph.error) replace("graph", h("p", { class: "empty" }, `no graph: ${graph.error}`));
    else renderGraph(graph.data, client);
  }
  if (statusText !== last.status || graphText !== last.graph) {
    const st = normaliseStatus(status.data);
    renderServices(st, graph.data);
    renderErrors(st);
  }
  const proxiesText = JSON.stringify(proxies);
  if (proxiesText !== last.proxies) renderSidecars(Array.isArray(proxies.data) ? proxies.data : []);
  Object.assign(last, { status: statusText, graph: graphText, proxies: proxiesText, client });
}

async function loop() {
  try {
    await refresh();
  } catch (err) {
    console.error(err);
  }
  setTimeout(loop, POLL_MS);
}

document.getElementById("client").addEventListener("change", (event) => {
  location.hash = event.target.value === PRODUCER_VIEW ? "" : event.target.value;
  refresh();
});
loop();
