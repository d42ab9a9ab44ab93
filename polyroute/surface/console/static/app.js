// polyroute's web console: plain ES module, no build step, nothing fetched but this
// gateway's own admin API. Every value from the API is put in the page as text (never
// as HTML): model names, key names and error classes come from clients.

const KEY_STORE = "polyroute.admin-key";
const ME_STORE = "polyroute.admin-me";  // {role, teams} from /admin/whoami
const page = document.getElementById("page");
let timer = null;      // the current page's refresh
let generation = 0;    // bumps on every navigation: late answers of an old page are ignored

// -- helpers ---------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);  // CSSOM: allowed by the CSP
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}
const fmt = {
  n: (x, d = 0) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en", {maximumFractionDigits: d, minimumFractionDigits: d})),
  ms: (x) => (x === null || x === undefined ? "–" : `${fmt.n(x, x < 10 ? 1 : 0)} ms`),
  usd: (x) => (x === null || x === undefined ? "–" : `$${Number(x).toFixed(Number(x) < 1 ? 4 : 2)}`),
  pct: (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`),
  time: (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "–"),
};
// What the signed-in key's role allows (the API enforces it; the page only shows what works).
function me() { return JSON.parse(sessionStorage.getItem(ME_STORE) || '{"role": "admin", "teams": []}'); }
const canWrite = () => me().role !== "auditor";
const teamAdmin = () => me().role === "team_admin";
const WHOLE_GATEWAY = ["deployments", "vendors"];  // pages a team admin may not read

const COLORS = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#be123c", "#4d7c0f", "#a16207"];

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY_STORE);
  const response = await fetch(path, {
    ...options,
    headers: {"Authorization": `Bearer ${key}`, "Content-Type": "application/json", ...(options.headers || {})},
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (response.status === 401) { signOut("The admin key was refused."); throw new Error("signed out"); }
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

function table(columns, rows, onOpen) {
  const head = h("tr", {}, columns.map((c) => h("th", {scope: "col", class: c.num ? "num" : null}, c.label)));
  const body = rows.map((r) => {
    const tr = h("tr", {}, columns.map((c) => h("td", {class: c.num ? "num" : null}, c.cell(r))));
    if (onOpen) {
      tr.className = "clickable";
      tr.tabIndex = 0;
      tr.setAttribute("role", "link");
      tr.addEventListener("click", () => onOpen(r));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onOpen(r); });
    }
    return tr;
  });
  return h("div", {class: "table-wrap"}, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

function field(id, label, input) {
  input.id = id;
  return h("div", {}, h("label", {for: id}, label), input);
}

function badge(text, kind) { return h("span", {class: `badge ${kind || text}`}, text); }

// Bars (stacked when several series): rows = [{label, values: {series: number}}].
function barChart(title, rows, seriesNames, valueFmt = (v) => fmt.n(v, 2)) {
  const W = 640, H = 220, pad = 34;
  const max = Math.max(1e-9, ...rows.map((r) => seriesNames.reduce((a, k) => a + (r.values[k] || 0), 0)));
  const svg = s("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "none"});
  const bw = rows.length ? Math.min(80, (W - pad) / rows.length) : 0;
  rows.forEach((r, i) => {
    let y = H - 20;
    seriesNames.forEach((k, j) => {
      const v = r.values[k] || 0;
      const bh = (v / max) * (H - 40);
      y -= bh;
      const rect = s("rect", {x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: bh, fill: COLORS[j % COLORS.length]});
      rect.append(s("title", {}, `${r.label} · ${k}: ${valueFmt(v)}`));
      svg.append(rect);
    });
    if (rows.length <= 14 || i % Math.ceil(rows.length / 14) === 0) {
      svg.append(s("text", {x: pad + i * bw + 2, y: H - 6}, r.label.slice(0, 12)));
    }
  });
  svg.append(s("text", {x: 0, y: 12}, valueFmt(max)));
  svg.append(s("line", {x1: pad, y1: H - 20, x2: W, y2: H - 20, stroke: "#cbd5e1"}));
  const legend = h("div", {class: "legend"}, seriesNames.map((k, j) => h("span", {}, h("i", {style: {background: COLORS[j % COLORS.length]}}), k)));
  return h("figure", {class: "card"}, h("figcaption", {}, h("strong", {}, title)), svg, seriesNames.length > 1 ? legend : null);
}

// Lines over time: points = [{label, values: {series: number}}]; a missing value breaks the line.
function lineChart(title, points, seriesNames, valueFmt = (v) => fmt.n(v, 1)) {
  const W = 640, H = 220, pad = 40;
  const all = points.flatMap((p) => seriesNames.map((k) => p.values[k]).filter((v) => v !== undefined && v !== null));
  const max = Math.max(1e-9, ...all);
  const svg = s("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "none"});
  const step = points.length > 1 ? (W - pad - 10) / (points.length - 1) : 0;
  const x = (i) => pad + (points.length > 1 ? i * step : (W - pad) / 2);
  const y = (v) => H - 20 - (v / max) * (H - 40);
  seriesNames.forEach((k, j) => {
    const color = COLORS[j % COLORS.length];
    const parts = [];
    let gap = true;  // the next point starts a new segment
    points.forEach((p, i) => {
      const v = p.values[k];
      if (v === undefined || v === null) { gap = true; return; }
      parts.push(`${gap ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      gap = false;
      const dot = s("circle", {cx: x(i), cy: y(v), r: 2.5, fill: color});
      dot.append(s("title", {}, `${p.label} · ${k}: ${valueFmt(v)}`));
      svg.append(dot);
    });
    if (parts.length) svg.prepend(s("path", {d: parts.join(" "), fill: "none", stroke: color, "stroke-width": 2}));
  });
  points.forEach((p, i) => {
    if (points.length <= 14 || i % Math.ceil(points.length / 14) === 0) svg.append(s("text", {x: x(i) - 10, y: H - 6}, p.label.slice(0, 12)));
  });
  svg.append(s("text", {x: 0, y: 12}, valueFmt(max)));
  svg.append(s("line", {x1: pad, y1: H - 20, x2: W, y2: H - 20, stroke: "#cbd5e1"}));
  const legend = h("div", {class: "legend"}, seriesNames.map((k, j) => h("span", {}, h("i", {style: {background: COLORS[j % COLORS.length]}}), k)));
  return h("figure", {class: "card"}, h("figcaption", {}, h("strong", {}, title)), svg, legend);
}

function downloadCsv(name, columns, rows) {
  const esc = (v) => {
    const t = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(t) || /^[=+\-@]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  const text = [columns.map((c) => esc(c.label)).join(","), ...rows.map((r) => columns.map((c) => esc(c.raw(r))).join(","))].join("\n");
  const url = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
  const a = h("a", {href: url, download: name});
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

function every(ms, fn) {
  const mine = generation;
  const run = async () => {
    if (mine !== generation) return;
    try { await fn(); } catch (e) { if (e.message !== "signed out") showError(e); }
    if (mine === generation && !document.hidden) timer = setTimeout(run, ms);
  };
  run();
}
document.addEventListener("visibilitychange", () => { if (!document.hidden) route(); });

function showError(e) {
  let box = document.getElementById("page-error");
  if (!box) { box = h("p", {id: "page-error", class: "error", role: "alert"}); page.prepend(box); }
  box.textContent = e.message;
}

function render(...nodes) {
  page.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

// -- pages -----------------------------------------------------------------------------
const pages = {};

pages.overview = () => {
  const live = h("div");
  const scope = teamAdmin() ? ` of your teams (${me().teams.join(", ")})` : "";
  render(h("h1", {}, "Overview"), h("p", {class: "hint"}, `The last 60 seconds${scope}, from the ledger; refreshed every 2 seconds.`), live);
  every(2000, async () => {
    const d = await api("/admin/live?window=60");
    const tiles = [
      ["Requests / s", fmt.n(d.requests_per_s, 2), "rps"],
      ["Latency p50", fmt.ms(d.latency_p50_ms), "p50"], ["Latency p99", fmt.ms(d.latency_p99_ms), "p99"],
      ["TTFT p50", fmt.ms(d.ttft_p50_ms), "ttft50"], ["TTFT p99", fmt.ms(d.ttft_p99_ms), "ttft99"],
      ["Error rate", fmt.pct(d.error_rate), "errors"], ["Requests (60 s)", fmt.n(d.requests), "count"],
      ["Spend (60 s)", fmt.usd(d.spend_usd), "spend"],
    ];
    const errorRows = Object.entries(d.errors_by_class).sort((a, b) => b[1] - a[1]);
    live.replaceChildren(
      h("div", {class: "tiles"}, tiles.map(([k, v, id]) => h("div", {class: "tile", "data-tile": id}, h("div", {class: "v"}, v), h("div", {class: "k"}, k)))),
      h("div", {class: "grid2"},
        h("div", {}, h("h2", {}, "Errors by class"), errorRows.length
          ? table([{label: "Error class", cell: (r) => r[0]}, {label: "Requests", num: true, cell: (r) => fmt.n(r[1])}], errorRows)
          : h("p", {class: "hint"}, "No errors.")),
        h("div", {}, h("h2", {}, "Top models"), table([{label: "Model group", cell: (r) => r[0]}, {label: "Requests", num: true, cell: (r) => fmt.n(r[1])}], d.top_models)),
        h("div", {}, h("h2", {}, "Top teams"), d.top_teams.length ? table([{label: "Team", cell: (r) => r[0]}, {label: "Requests", num: true, cell: (r) => fmt.n(r[1])}], d.top_teams) : h("p", {class: "hint"}, "No team traffic."))),
      h("h2", {}, "Spend against budgets"),
      d.budgets.length ? budgetTable(d.budgets) : h("p", {class: "hint"}, "No key, team or organisation has a budget."));
  });
};

function budgetTable(budgets) {
  const used = (spent, budget) => (budget ? h("span", {class: "row"}, h("meter", {min: 0, max: 1, low: 0.75, high: 0.9, optimum: 0, value: Math.min(1, spent / budget), "aria-label": `${fmt.pct(spent / budget)} used`}), `${fmt.usd(spent)} / ${fmt.usd(budget)}`) : fmt.usd(spent));
  return table([
    {label: "Scope", cell: (b) => b.scope},
    {label: "Today", cell: (b) => used(b.spent_today_usd, b.daily_budget_usd)},
    {label: "This month", cell: (b) => used(b.spent_this_month_usd, b.monthly_budget_usd)},
    {label: "Total", cell: (b) => used(b.spent_total_usd, b.total_budget_usd)},
    {label: "Reserved", num: true, cell: (b) => fmt.usd(b.reserved_usd)},
  ], budgets);
}

pages.deployments = () => {
  const body = h("div");
  render(h("h1", {}, "Deployments"), h("p", {class: "hint"}, "Circuits, attempts and share of traffic since this gateway started; refreshed every 3 seconds."), body);
  every(3000, async () => {
    const {data} = await api("/admin/deployments");
    body.replaceChildren(table([
      {label: "Deployment", cell: (d) => d.name}, {label: "Group", cell: (d) => d.group},
      {label: "Vendor", cell: (d) => d.vendor}, {label: "Model", cell: (d) => d.model},
      {label: "Circuit", cell: (d) => badge(d.circuit)},
      {label: "Attempts", num: true, cell: (d) => fmt.n(d.attempts)},
      {label: "Errors", cell: (d) => Object.entries(d.errors).map(([k, v]) => `${k} ${v}`).join(", ") || "–"},
      {label: "Share", num: true, cell: (d) => fmt.pct(d.share)},
      {label: "Mean latency", num: true, cell: (d) => fmt.ms(d.latency_mean_ms)},
      {label: "Last probe", cell: (d) => fmt.time(d.last_probe)},
      {label: "Transitions", cell: (d) => d.transitions.slice(-3).map((t) => `${t.to} ${fmt.time(t.at).slice(11)}`).join(" · ") || "–"},
    ], data));
  });
};

const REQUEST_FILTERS = [["since", "Since", "1h"], ["key", "Key id", ""], ["team", "Team", ""], ["model", "Model group", ""],
  ["vendor", "Vendor", ""], ["status", "Status", ""], ["error_class", "Error class", ""]];

pages.requests = (params) => {
  const form = h("form", {class: "filters card", role: "search", "aria-label": "Search requests"},
    REQUEST_FILTERS.map(([name, label, dflt]) => field(`f-${name}`, label, h("input", {name, value: params.get(name) ?? dflt, placeholder: name === "since" ? "1h, 1d, 2026-01-31" : ""}))),
    h("div", {}, h("button", {type: "submit"}, "Search")));
  const results = h("div");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams([...new FormData(form)].filter(([, v]) => v !== ""));
    location.hash = `#requests?${q}`;
  });
  render(h("h1", {}, "Requests"), form, results);
  const query = new URLSearchParams(REQUEST_FILTERS.map(([n, , d]) => [n, params.get(n) ?? d]).filter(([, v]) => v));
  query.set("limit", "100");
  every(3000, async () => {
    const {data} = await api(`/admin/requests?${query}`);
    results.replaceChildren(h("p", {class: "hint"}, `${data.length} newest matching requests; refreshed every 3 seconds. Open one for its attempt chain.`),
      table([
        {label: "Time (UTC)", cell: (r) => fmt.time(r.ts)}, {label: "Request id", cell: (r) => r.request_id},
        {label: "Key", cell: (r) => r.key_id ?? "–"}, {label: "Team", cell: (r) => r.team ?? "–"},
        {label: "Model", cell: (r) => r.model_group ?? r.requested_model}, {label: "Deployment", cell: (r) => r.deployment ?? "–"},
        {label: "Status", cell: (r) => badge(String(r.status), r.status < 400 ? "ok" : "bad")},
        {label: "Error", cell: (r) => r.error_class ?? ""},
        {label: "Tokens in/out", num: true, cell: (r) => `${fmt.n(r.prompt_tokens)} / ${fmt.n(r.completion_tokens)}`},
        {label: "Cost", num: true, cell: (r) => fmt.usd(r.cost_usd)}, {label: "Latency", num: true, cell: (r) => fmt.ms(r.latency_ms)},
      ], data, (r) => { location.hash = `#request/${encodeURIComponent(r.request_id)}`; }));
  });
};

pages.request = async (params, id) => {
  render(h("p", {}, "Loading…"));
  const {data} = await api(`/admin/ledger/${encodeURIComponent(id)}`);
  if (!data.length) { render(h("h1", {}, "Request"), h("p", {}, "No ledger record for this request (yet).")); return; }
  const r = data[0];
  const attempts = JSON.parse(r.attempts);
  const kv = [["Request id", r.request_id], ["Client's id", r.client_request_id], ["Time (UTC)", fmt.time(r.ts)],
    ["Key", r.key_id], ["Team", r.team], ["Organisation", r.org], ["Endpoint", r.endpoint],
    ["Requested model", r.requested_model], ["Model group", r.model_group], ["Deployment", r.deployment],
    ["Vendor", r.vendor], ["Upstream model", r.upstream_model], ["Status", r.status], ["Error class", r.error_class],
    ["Stream", r.stream ? "yes" : "no"], ["Latency", fmt.ms(r.latency_ms)], ["Time to first token", fmt.ms(r.ttft_ms)],
    ["Route decision", r.route],
    ["Tokens", `prompt ${r.prompt_tokens}, completion ${r.completion_tokens}, cached ${r.cached_tokens}, cache write ${r.cache_write_tokens}, reasoning ${r.reasoning_tokens}${r.usage_estimated ? " (estimated)" : ""}`],
    ["Cost", fmt.usd(r.cost_usd)], ["Price source", r.price_source]];
  render(h("p", {}, h("a", {href: "#requests"}, "← Requests")), h("h1", {}, `Request ${r.request_id}`),
    h("div", {class: "grid2"},
      h("section", {class: "card", "aria-labelledby": "chain-title"}, h("h2", {id: "chain-title"}, "Attempt chain"),
        h("ol", {class: "chain", id: "attempt-chain"}, attempts.map(([dep, vendor, outcome, status, ms], i) =>
          h("li", {class: outcome === "ok" ? "ok" : "bad"}, h("strong", {}, `${i + 1}. ${dep}`), ` (${vendor || "–"}) `,
            badge(outcome, outcome === "ok" ? "ok" : "bad"), ` HTTP ${status}, ${fmt.ms(ms)}`)))),
      h("section", {class: "card"}, h("h2", {}, "Details"),
        h("dl", {class: "kv"}, kv.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])))));
};

const SPEND_BY = [["team", "Team"], ["key", "Key"], ["org", "Organisation"], ["model", "Model group"], ["vendor", "Vendor"], ["day", "Day"]];

pages.spend = async (params) => {
  const by = params.get("by") || "day";
  // A team admin reads one of its teams at a time (the API refuses the others).
  const teamInput = teamAdmin()
    ? h("select", {name: "team"}, me().teams.map((t) => h("option", {value: t, selected: t === params.get("team")}, t)))
    : h("input", {name: "team", value: params.get("team") || ""});
  const form = h("form", {class: "filters card", "aria-label": "Spend filters"},
    field("s-since", "Since", h("input", {name: "since", value: params.get("since") || "30d"})),
    field("s-by", "Group by", h("select", {name: "by"}, SPEND_BY.map(([v, l]) => h("option", {value: v, selected: v === by}, l)))),
    field("s-team", "Team", teamInput),
    field("s-vendor", "Vendor", h("input", {name: "vendor", value: params.get("vendor") || ""})),
    field("s-model", "Model group", h("input", {name: "model", value: params.get("model") || ""})),
    h("div", {}, h("button", {type: "submit"}, "Show")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#spend?${new URLSearchParams([...new FormData(form)].filter(([, v]) => v !== ""))}`;
  });
  const q = new URLSearchParams({by, since: params.get("since") || "30d"});
  for (const f of ["team", "vendor", "model"]) if (params.get(f)) q.set(f, params.get(f));
  if (teamAdmin() && !q.get("team")) q.set("team", teamInput.value);
  const daily = new URLSearchParams(q);
  daily.set("by", "day,team");
  render(h("h1", {}, "Spend"), form, h("p", {}, "Loading…"));
  const [{data}, {data: perDay}, live] = await Promise.all([api(`/admin/usage?${q}`), api(`/admin/usage?${daily}`), api("/admin/live?window=60")]);
  // Per day, each team's spend stacked (keys of no team under "(none)").
  const days = new Map();
  for (const r of perDay) {
    const day = String(r.group.day), team = String(r.group.team ?? "(none)");
    if (!days.has(day)) days.set(day, {});
    days.get(day)[team] = (days.get(day)[team] || 0) + r.cost_usd;
  }
  const dayTeams = [...new Set(perDay.map((r) => String(r.group.team ?? "(none)")))].sort();
  const label = (r) => String(r.group[by] ?? "(none)");
  const columns = [
    {label: SPEND_BY.find(([v]) => v === by)[1], cell: label, raw: label},
    {label: "Requests", num: true, cell: (r) => fmt.n(r.requests), raw: (r) => r.requests},
    {label: "Failed", num: true, cell: (r) => fmt.n(r.failed_requests), raw: (r) => r.failed_requests},
    {label: "Prompt tokens", num: true, cell: (r) => fmt.n(r.prompt_tokens), raw: (r) => r.prompt_tokens},
    {label: "Completion tokens", num: true, cell: (r) => fmt.n(r.completion_tokens), raw: (r) => r.completion_tokens},
    {label: "Cost (USD)", num: true, cell: (r) => fmt.usd(r.cost_usd), raw: (r) => r.cost_usd},
    {label: "Unpriced", num: true, cell: (r) => fmt.n(r.unpriced_requests), raw: (r) => r.unpriced_requests},
  ];
  const total = data.reduce((a, r) => a + r.cost_usd, 0);
  render(h("h1", {}, "Spend"), form,
    h("div", {class: "tiles"}, h("div", {class: "tile"}, h("div", {class: "v", id: "spend-total"}, fmt.usd(total)), h("div", {class: "k"}, "Total in range")),
      h("div", {class: "tile"}, h("div", {class: "v"}, fmt.n(data.reduce((a, r) => a + r.requests, 0))), h("div", {class: "k"}, "Requests"))),
    barChart(`Cost (USD) by ${by}`, data.map((r) => ({label: label(r), values: {cost: r.cost_usd}})), ["cost"], fmt.usd),
    h("div", {id: "spend-per-day"}, barChart("Cost (USD) per day, stacked by team", [...days].sort().map(([day, values]) => ({label: day.slice(5), values})), dayTeams, fmt.usd)),
    h("div", {class: "row"}, h("button", {type: "button", class: "secondary", id: "csv", onclick: () => downloadCsv(`polyroute-spend-by-${by}.csv`, columns, data)}, "Export CSV")),
    h("div", {id: "spend-table"}, table(columns, data)),
    h("h2", {}, "Budget burn-down"), live.budgets.length ? budgetTable(live.budgets) : h("p", {class: "hint"}, "No budgets set."));
};

pages.keys = async () => {
  // A team admin lists only its teams' keys and its teams (the API filters); organisations
  // are not its to read. An auditor reads everything and is offered no write control.
  const [{data: keys}, {data: teams}, {data: orgs}] = await Promise.all([api("/admin/keys"), api("/admin/teams"),
    teamAdmin() ? {data: []} : api("/admin/orgs")]);
  const writes = canWrite(), scoped = teamAdmin();
  const created = h("div", {id: "created", "aria-live": "assertive"});
  const keyForm = h("form", {class: "filters card", "aria-label": "Create a key"},
    field("k-name", "Name", h("input", {name: "name", required: true})),
    field("k-team", "Team", h("select", {name: "team"}, scoped ? null : h("option", {value: ""}, "(none)"), teams.map((t) => h("option", {value: t.id}, t.id)))),
    field("k-daily", "Daily budget (USD)", h("input", {name: "daily_budget_usd", type: "number", min: "0", step: "any"})),
    field("k-rpm", "Requests per minute", h("input", {name: "rpm", type: "number", min: "1", step: "1"})),
    h("div", {}, h("button", {type: "submit"}, "Create key")));
  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = Object.fromEntries([...new FormData(keyForm)].filter(([, v]) => v !== ""));
    const body = {name: f.name};
    if (f.team) body.team = f.team;
    if (f.daily_budget_usd) body.daily_budget_usd = Number(f.daily_budget_usd);
    if (f.rpm) body.rpm = Number(f.rpm);
    try {
      const k = await api("/admin/keys", {method: "POST", body: JSON.stringify(body)});
      await pages.keys();
      document.getElementById("created").replaceChildren(h("div", {class: "card", role: "status"},
        h("p", {}, h("strong", {}, `Key ${k.id} created.`), " Copy its secret now: it is shown this once and never again."),
        h("p", {class: "secret", id: "new-secret"}, k.key)));
    } catch (err) { showError(err); }
  });
  const teamForm = h("form", {class: "filters card", "aria-label": "Create a team"},
    field("t-id", "Team id", h("input", {name: "id", required: true, pattern: "[A-Za-z0-9_.\\-]+"})),
    field("t-org", "Organisation", h("select", {name: "org"}, h("option", {value: ""}, "(none)"), orgs.map((o) => h("option", {value: o.id}, o.id)))),
    field("t-daily", "Daily budget (USD)", h("input", {name: "daily_budget_usd", type: "number", min: "0", step: "any"})),
    h("div", {}, h("button", {type: "submit"}, "Create team")));
  teamForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = Object.fromEntries([...new FormData(teamForm)].filter(([, v]) => v !== ""));
    const body = {id: f.id};
    if (f.org) body.org = f.org;
    if (f.daily_budget_usd) body.daily_budget_usd = Number(f.daily_budget_usd);
    try { await api("/admin/teams", {method: "POST", body: JSON.stringify(body)}); await pages.keys(); } catch (err) { showError(err); }
  });
  const orgForm = h("form", {class: "filters card", "aria-label": "Create an organisation"},
    field("o-id", "Organisation id", h("input", {name: "id", required: true, pattern: "[A-Za-z0-9_.\\-]+"})),
    field("o-monthly", "Monthly budget (USD)", h("input", {name: "monthly_budget_usd", type: "number", min: "0", step: "any"})),
    h("div", {}, h("button", {type: "submit"}, "Create organisation")));
  orgForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = Object.fromEntries([...new FormData(orgForm)].filter(([, v]) => v !== ""));
    const body = {id: f.id};
    if (f.monthly_budget_usd) body.monthly_budget_usd = Number(f.monthly_budget_usd);
    try { await api("/admin/orgs", {method: "POST", body: JSON.stringify(body)}); await pages.keys(); } catch (err) { showError(err); }
  });
  const revoke = async (k) => {
    if (!confirm(`Revoke key ${k.id}${k.name ? ` (${k.name})` : ""}? Requests with it are refused from now on.`)) return;
    try { await api(`/admin/keys/${encodeURIComponent(k.id)}`, {method: "DELETE"}); await pages.keys(); } catch (err) { showError(err); }
  };
  const deleteOrg = async (o) => {
    // The API deletes the organisation's teams with it and revokes their keys: say so first.
    const its = teams.filter((t) => t.org === o.id).map((t) => t.id);
    const what = its.length
      ? `Its teams (${its.join(", ")}) are deleted with it and every key of theirs is revoked: requests with those keys are refused from now on.`
      : "It has no teams; keys of teams added to it later would be revoked with it.";
    if (!confirm(`Delete organisation ${o.id}? ${what}`)) return;
    try { await api(`/admin/orgs/${encodeURIComponent(o.id)}`, {method: "DELETE"}); editor.replaceChildren(); await pages.keys(); } catch (err) { showError(err); }
  };
  const editor = h("div", {id: "editor"});
  const edit = (kind, obj) => {
    const limits = [["daily_budget_usd", "Daily budget (USD)"], ["monthly_budget_usd", "Monthly budget (USD)"],
      ["total_budget_usd", "Total budget (USD)"], ["rpm", "Requests per minute"], ["tpm", "Tokens per minute"]];
    // Organisations also get their model allow-list and tags here (keys' and teams' stay
    // with the API and CLI): comma-separated text, parsed on save.
    const org = kind === "organisation";
    const form = h("form", {class: "filters card", "aria-label": `Limits of ${kind} ${obj.id}`},
      h("p", {class: "hint"}, `Limits and budgets of ${kind} ${obj.id}; empty: no limit${org ? "; models empty: every model group" : ""}.`),
      limits.map(([name, label]) => field(`e-${name}`, label, h("input", {name, type: "number", min: "0", step: name.includes("usd") ? "any" : "1", value: obj[name] ?? ""}))),
      org ? field("e-models", "Allowed model groups (comma-separated)", h("input", {name: "models", value: (obj.models || []).join(", ")})) : null,
      org ? field("e-tags", "Tags (key=value, comma-separated)", h("input", {name: "tags", value: Object.entries(obj.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ")})) : null,
      h("div", {}, h("button", {type: "submit"}, "Save limits")),
      h("div", {}, h("button", {type: "button", class: "secondary", onclick: () => editor.replaceChildren()}, "Cancel")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const patch = Object.fromEntries(limits.map(([name]) => {
        const v = form.elements[name].value;
        return [name, v === "" ? null : Number(v)];
      }));
      const path = {key: "keys", team: "teams", organisation: "orgs"}[kind];
      try {
        if (org) {
          const list = (name) => form.elements[name].value.split(",").map((x) => x.trim()).filter(Boolean);
          const models = list("models");
          patch.models = models.length ? models : null;
          patch.tags = Object.fromEntries(list("tags").map((pair) => {
            const at = pair.indexOf("=");
            if (at < 1) throw new Error(`Tag "${pair}" is not key=value.`);
            return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
          }));
        }
        await api(`/admin/${path}/${encodeURIComponent(obj.id)}`, {method: "PATCH", body: JSON.stringify(patch)});
        await pages.keys();
      } catch (err) { showError(err); }
    });
    editor.replaceChildren(form);
    form.elements.daily_budget_usd.focus();
  };
  const previous = document.getElementById("created");
  const role = me().role;
  render(h("h1", {}, "Keys, teams and organisations"),
    role === "admin" ? null : h("p", {class: "hint", id: "role-hint"}, scoped
      ? `Team admin of ${me().teams.join(", ")}: the keys and settings of these teams only.`
      : "Auditor: read-only; nothing here can be changed."),
    previous || created,
    editor, h("h2", {}, "Keys"), writes ? keyForm : null,
    table([
      {label: "Id", cell: (k) => k.id}, {label: "Name", cell: (k) => k.name ?? ""}, {label: "Preview", cell: (k) => k.preview},
      {label: "Team", cell: (k) => k.team ?? "–"}, {label: "Daily budget", num: true, cell: (k) => fmt.usd(k.daily_budget_usd)},
      {label: "RPM", num: true, cell: (k) => fmt.n(k.rpm)}, {label: "Created (UTC)", cell: (k) => fmt.time(k.created_at)},
      {label: "State", cell: (k) => badge(k.revoked ? "revoked" : "active", k.revoked ? "bad" : "ok")},
      writes && {label: "Actions", cell: (k) => (k.revoked ? "" : h("span", {class: "row"},
        h("button", {type: "button", class: "secondary", "aria-label": `Edit limits of key ${k.id}`, onclick: () => edit("key", k)}, "Limits"),
        h("button", {type: "button", class: "danger", "aria-label": `Revoke key ${k.id}`, "data-revoke": k.id, onclick: () => revoke(k)}, "Revoke")))},
    ].filter(Boolean), keys),
    h("h2", {}, "Teams"), writes && !scoped ? teamForm : null,
    table([{label: "Team", cell: (t) => t.id}, {label: "Organisation", cell: (t) => t.org ?? "–"},
      {label: "Daily budget", num: true, cell: (t) => fmt.usd(t.daily_budget_usd)}, {label: "Monthly budget", num: true, cell: (t) => fmt.usd(t.monthly_budget_usd)},
      writes && {label: "Actions", cell: (t) => h("button", {type: "button", class: "secondary", "aria-label": `Edit limits of team ${t.id}`, onclick: () => edit("team", t)}, "Limits")}].filter(Boolean), teams),
    ...(scoped ? [] : [h("h2", {}, "Organisations"), writes ? orgForm : null,
      table([{label: "Organisation", cell: (o) => o.id}, {label: "Teams", cell: (o) => teams.filter((t) => t.org === o.id).map((t) => t.id).join(", ") || "–"},
        {label: "Daily budget", num: true, cell: (o) => fmt.usd(o.daily_budget_usd)}, {label: "Monthly budget", num: true, cell: (o) => fmt.usd(o.monthly_budget_usd)},
        {label: "Total budget", num: true, cell: (o) => fmt.usd(o.total_budget_usd)},
        {label: "RPM", num: true, cell: (o) => fmt.n(o.rpm)}, {label: "TPM", num: true, cell: (o) => fmt.n(o.tpm)},
        {label: "Models", cell: (o) => (o.models ? o.models.join(", ") : "all")},
        {label: "Tags", cell: (o) => Object.entries(o.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "–"},
        writes && {label: "Actions", cell: (o) => h("span", {class: "row"},
          h("button", {type: "button", class: "secondary", "aria-label": `Edit limits of organisation ${o.id}`, onclick: () => edit("organisation", o)}, "Limits"),
          h("button", {type: "button", class: "danger", "aria-label": `Delete organisation ${o.id}`, onclick: () => deleteOrg(o)}, "Delete"))},
      ].filter(Boolean), orgs)]));
};

pages.vendors = (params) => {
  const body = h("div");
  render(h("h1", {}, "Vendors"), h("p", {class: "hint"}, "Requests and latency per vendor over the last 24 hours, by hour; how dependent the traffic of the last 30 days is on each vendor and cloud, and what losing one would take down (see docs/independence.md)."), body);
  every(10000, async () => {
    const [d, ind] = await Promise.all([api("/admin/vendors?since=1d&bucket=3600"), api("/admin/independence?since=30d")]);
    const vendors = Object.keys(d.share);
    const whole = (dim) => ind.report.concentrations.find((c) => c.scope === "all" && c.dimension === dim);
    const byVendor = whole("vendor"), byCloud = whole("cloud");
    const shares = (c, caption, id) => (c ? h("section", {"aria-labelledby": id}, h("h2", {id}, caption), table([
      {label: "Name", cell: (x) => x.name}, {label: "Requests", num: true, cell: (x) => fmt.n(x.requests)},
      {label: "Share of requests", num: true, cell: (x) => fmt.pct(x.request_share)},
      {label: "Share of tokens", num: true, cell: (x) => fmt.pct(x.token_share)},
      {label: "Share of spend", num: true, cell: (x) => fmt.pct(x.spend_share)}], c.shares)) : null);
    const captive = ind.report.captive.reduce((a, c) => a + c.requests, 0);
    const findings = ind.findings.filter((f) => f.scope === "group");
    body.replaceChildren(
      h("div", {class: "tiles"},
        h("div", {class: "tile"}, h("div", {class: "v", id: "hhi"}, d.hhi.toFixed(2)), h("div", {class: "k"}, "Concentration, 24 h (HHI; 1 = one vendor)")),
        h("div", {class: "tile"}, h("div", {class: "v"}, fmt.n(vendors.length)), h("div", {class: "k"}, "Vendors with traffic")),
        h("div", {class: "tile", "data-tile": "hhi30"}, h("div", {class: "v"}, byVendor ? fmt.n(byVendor.hhi_requests) : "–"), h("div", {class: "k"}, "Vendor HHI, 30 days (10 000 = one vendor)")),
        h("div", {class: "tile", "data-tile": "top"}, h("div", {class: "v"}, byVendor ? fmt.pct(byVendor.top_share) : "–"), h("div", {class: "k"}, `Largest vendor share${byVendor ? ` (${byVendor.top})` : ""}`)),
        h("div", {class: "tile", "data-tile": "captive"}, h("div", {class: "v"}, fmt.pct(ind.report.requests ? captive / ind.report.requests : 0)), h("div", {class: "k"}, `Captive traffic (${fmt.n(captive)} requests that cannot move)`)),
        h("div", {class: "tile", "data-tile": "spof"}, h("div", {class: "v"}, fmt.n(new Set(findings.map((f) => f.name)).size)), h("div", {class: "k"}, "Model groups with a single point of failure"))),
      barChart("Requests per hour by vendor", d.series.map((b) => ({label: fmt.time(b.start).slice(11, 16), values: b.requests})), vendors, (v) => fmt.n(v)),
      h("div", {id: "vendor-latency"}, lineChart("Mean latency of answered requests per hour by vendor (ms)", d.series.map((b) => ({label: fmt.time(b.start).slice(11, 16), values: b.latency_ms || {}})), vendors, fmt.ms)),
      h("div", {class: "grid2"}, shares(byVendor, "Share per vendor, 30 days", "share-vendor"), shares(byCloud, "Share per cloud, 30 days", "share-cloud")),
      h("h2", {}, "Single points of failure"),
      findings.length ? h("div", {id: "spof"}, table([
        {label: "If we lose", cell: (f) => `${f.domain} ${f.lost}`}, {label: "Model group", cell: (f) => f.name},
        {label: "Requests lost", num: true, cell: (f) => fmt.n(f.requests_lost)}, {label: "Share lost", num: true, cell: (f) => fmt.pct(f.share_lost)},
        {label: "Why", cell: (f) => f.broken.join(", ")}], findings)) : h("p", {class: "hint", id: "spof"}, "None: every group's traffic has somewhere else to go."),
      h("h2", {}, "Captive traffic"),
      ind.report.captive.length ? table([
        {label: "Model group", cell: (c) => c.group}, {label: "Team", cell: (c) => c.team ?? "–"}, {label: "Vendor", cell: (c) => c.vendor},
        {label: "Uses", cell: (c) => c.features.join(", ")}, {label: "Requests", num: true, cell: (c) => fmt.n(c.requests)},
        {label: "Cost", num: true, cell: (c) => fmt.usd(c.cost_usd)}], ind.report.captive) : h("p", {class: "hint"}, "None: no recorded request used a capability only one vendor in its group offers."));
  });
};

// -- navigation and sign-in ------------------------------------------------------------
async function route() {
  clearTimeout(timer);
  generation += 1;
  if (!sessionStorage.getItem(KEY_STORE)) { showSignIn(); return; }
  if (!sessionStorage.getItem(ME_STORE)) {
    try { sessionStorage.setItem(ME_STORE, JSON.stringify(await api("/admin/whoami"))); } catch (e) { return; }
  }
  document.getElementById("signin").hidden = true;
  document.getElementById("nav").hidden = false;
  const {role, teams} = me();
  document.getElementById("whoami").textContent = role === "team_admin" ? `team admin · ${teams.join(", ")}` : role === "auditor" ? "auditor · read-only" : "admin";
  for (const a of document.querySelectorAll("#nav a")) a.hidden = teamAdmin() && WHOLE_GATEWAY.includes(a.getAttribute("href").slice(1));
  const [path, query] = (location.hash.slice(1) || "overview").split("?");
  const [name, ...rest] = path.split("/");
  const params = new URLSearchParams(query || "");
  const show = (teamAdmin() && WHOLE_GATEWAY.includes(name) ? null : pages[name]) || pages.overview;
  for (const a of document.querySelectorAll("#nav a")) {
    const current = a.getAttribute("href") === `#${name === "request" ? "requests" : name}`;
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try { await show(params, decodeURIComponent(rest.join("/"))); } catch (e) { if (e.message !== "signed out") showError(e); }
  document.getElementById("main").focus({preventScroll: true});
}

function showSignIn(message) {
  page.replaceChildren();
  document.getElementById("nav").hidden = true;
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("admin-key").focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  sessionStorage.removeItem(ME_STORE);
  clearTimeout(timer);
  generation += 1;
  showSignIn(message);
}

document.getElementById("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = document.getElementById("admin-key").value.trim();
  const response = await fetch("/admin/whoami", {headers: {"Authorization": `Bearer ${key}`}});
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    document.getElementById("signin-error").textContent = body?.error?.message || `HTTP ${response.status}`;
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  sessionStorage.setItem(ME_STORE, JSON.stringify(body));
  document.getElementById("admin-key").value = "";
  route();
});
document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
