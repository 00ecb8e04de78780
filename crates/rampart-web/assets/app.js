// Rampart's pages: every view is drawn from the JSON API (/api/v1/), so nothing here is
// possible only through the pages. Elements are built with the DOM (textContent, never
// innerHTML), and no script is inline: the Content-Security-Policy allows only this file.
"use strict";

const state = { me: null, csrf: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const r = await fetch("/api/v1" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (r.status === 401 && path !== "/login") { state.me = null; go("login"); }
  if (!r.ok) throw Object.assign(new Error((data && data.message) || r.statusText), { code: data && data.error, status: r.status });
  return data;
}

function main() { return document.getElementById("main"); }

function show(title, ...content) {
  const m = main();
  m.replaceChildren(el("h2", {}, title), ...content);
  document.title = title + " · Rampart";
}

function notice(text, kind) {
  const n = el("p", { class: "notice " + (kind || "error"), role: "status" }, text);
  main().prepend(n);
  setTimeout(() => n.remove(), 8000);
}

function form(fields, submit, onSubmit) {
  const f = el("form", {},
    fields.map(([name, label, type, extra]) =>
      el("label", {}, label, el("input", Object.assign({ name, type: type || "text", autocomplete: "off" }, extra || {})))),
    el("button", { type: "submit" }, submit));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new FormData(f).entries());
    try { await onSubmit(values, f); } catch (e) { notice(e.message); }
  });
  return f;
}

function table(headers, rows) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))));
}

function button(label, onClick, kind) {
  return el("button", { type: "button", class: kind || "", on: { click: async () => {
    try { await onClick(); } catch (e) { notice(e.message); }
  } } }, label);
}

function date(t) { return t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") : "never"; }

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

// A line chart of hourly counts: one line per [series name, label, CSS class].
function chart(title, stats, lines) {
  const n = stats.hours.length, w = 600, h = 160, pad = 24;
  const values = lines.map(([name]) => stats.series[name] || new Array(n).fill(0));
  const max = Math.max(1, ...values.flat());
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, n - 1);
  const y = (v) => h - pad - (v * (h - 2 * pad)) / max;
  const plot = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img", "aria-label": title },
    svg("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svg("text", { x: 2, y: pad - 8, class: "tick" }, String(max)),
    svg("text", { x: pad, y: h - 6, class: "tick" }, date(stats.hours[0])),
    svg("text", { x: w - pad, y: h - 6, class: "tick", "text-anchor": "end" }, "now"),
    ...values.map((vals, i) => svg("polyline", { class: "line " + lines[i][2], points: vals.map((v, j) => `${x(j)},${y(v)}`).join(" ") })));
  const totals = lines.map(([name, label, cls], i) => el("span", { class: "legend " + cls }, label + ": " + values[i].reduce((a, b) => a + b, 0)));
  return el("figure", {}, el("figcaption", {}, title, " ", totals), plot);
}

function nav() {
  const n = document.getElementById("nav");
  const links = [];
  if (state.me && !state.me.enroll_2fa_first) {
    links.push(["home", "Dashboard"]);
    if (state.me.role === "admin") links.push(["users", "Users"], ["domains", "Domains"], ["aliases", "Aliases"], ["server", "Server"]);
    if (state.me.role === "admin") links.push(["certificates", "Certificates"]);
    links.push(["quarantine", "Quarantine"], ["account", "My account"]);
  }
  if (state.me) links.push(["logout", "Log out"]);
  n.replaceChildren(...links.map(([h, t]) => el("a", { href: "#" + h }, t)));
}

function go(view) { if (location.hash !== "#" + view) location.hash = view; else route(); }

// Messages sent today against the daily quota: "3 / 200", "3 (exempt)", "3 / none".
function quotaText(q) {
  const day = q.quotas.find((x) => x.key === "messages_per_day");
  if (q.exempt) return day.used + " (exempt)";
  return day.used + " / " + (day.limit && q.enabled ? day.limit : "none");
}

// One account as an admin sees it, below the users table: where it logged in, its app
// passwords (revoke, create: the new one is shown once).
async function userDetail(box, address, created) {
  const path = "/users/" + encodeURIComponent(address);
  const [logins, apps] = await Promise.all([api("GET", path + "/logins"), api("GET", path + "/app-passwords")]);
  box.replaceChildren(el("h3", {}, "Account " + address),
    el("h4", {}, "Login history"),
    logins.length ? table(["Network", "Protocol", "Last", "First", "Logins"], logins.map((l) => [l.net, l.proto, date(l.last), date(l.first), l.logins]))
      : el("p", {}, "No logins yet."),
    el("h4", {}, "App passwords"),
    apps.length ? el("div", { id: "user-app-passwords" }, table(["Name", "Created", "Last used", ""], apps.map((a) => [a.name, date(a.created), date(a.last_used),
      button("Revoke", async () => {
        await api("DELETE", path + "/app-passwords/" + encodeURIComponent(a.name)); await userDetail(box, address);
      }, "danger")]))) : el("p", {}, "No app passwords."),
    created ? el("p", { class: "notice ok" }, "App password " + created.name + " for " + address + " (shown once): ", el("code", {}, created.password)) : "",
    form([["name", "New app password name (e.g. phone)", "text", { required: true }]], "Create app password", async (v) => {
      await userDetail(box, address, await api("POST", path + "/app-passwords", v));
    }));
  box.scrollIntoView();
}

// The findings `rampart audit` prints, from the server's last background run, high first; a
// button asks for a run now and the box redraws when that run is done.
const SEVERITY = { high: 0, medium: 1, low: 2 };
function auditReport(box, report, waitingFor) {
  const findings = report.findings.slice().sort((a, b) => SEVERITY[a.severity] - SEVERITY[b.severity]);
  const every = report.interval ? "every " + Math.round(report.interval / 3600 * 10) / 10 + " h and at start" : "only when asked";
  const when = report.computed ? "Last run " + date(report.computed) + " UTC (runs " + every + ")." : "Not run yet (runs " + every + ").";
  const rerun = button(waitingFor ? "Running…" : "Run the audit now", async () => {
    const { run } = await api("POST", "/audit");
    auditReport(box, report, run);
    for (let i = 0; i < 90; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const next = await api("GET", "/audit");
      // A report exists only once its run has finished.
      if (next.run >= run) { auditReport(box, next); return; }
    }
    notice("The audit is still running; reload the page later.", "info");
  });
  if (waitingFor) rerun.disabled = true;
  box.replaceChildren(el("p", {}, when, " The open-relay test runs only from the command line: ", el("code", {}, "rampart audit"), "."),
    report.failed ? el("p", { class: "notice" }, "The last run could not finish; the server log says why (event=audit_failed).") : "",
    report.computed && !report.failed && !findings.length ? el("p", { class: "notice ok" }, "No findings.") : "",
    findings.length ? table(["Severity", "Area", "Concerns", "Problem", "Fix"], findings.map((f) => [
      el("span", { class: "mark " + f.severity }, f.severity), f.area, f.subject, f.problem, f.fix])) : "",
    rerun);
}

const views = {
  async login() {
    const f = form([["username", "Address", "email", { autocomplete: "username", required: true }],
      ["password", "Password", "password", { autocomplete: "current-password", required: true }],
      ["totp", "Two-factor code (or a recovery code)", "text", { inputmode: "numeric", autocomplete: "one-time-code" }]],
      "Log in", async (v) => {
        try {
          const me = await api("POST", "/login", v);
          state.me = me; state.csrf = me.csrf;
          go(me.enroll_2fa_first ? "totp" : "home");
        } catch (e) {
          if (e.code === "totp_required") { f.querySelector("[name=totp]").focus(); notice("Enter the code from your authenticator app.", "info"); }
          else throw e;
        }
      });
    show("Log in", f);
  },

  async logout() {
    try { await api("POST", "/logout"); } catch (e) { /* already out */ }
    state.me = null; state.csrf = null; go("login");
  },

  async home() {
    const parts = [el("p", {}, "Logged in as ", el("strong", {}, state.me.address), " (" + state.me.role + ")")];
    if (state.me.role === "admin") {
      const [users, domains, aliases, held, bans, learnt, queue] = await Promise.all([
        api("GET", "/users"), api("GET", "/domains"), api("GET", "/aliases"), api("GET", "/quarantine"),
        api("GET", "/bans"), api("GET", "/spam/stats"), api("GET", "/queue")]);
      parts.push(el("ul", { class: "cards" },
        [["Users", users.length], ["Domains", domains.length], ["Aliases", aliases.length], ["Held messages", held.length],
          ["Queued messages", queue.length], ["Active bans", bans.length], ["Classifier", learnt.spam + " spam / " + learnt.ham + " ham"]]
          .map(([k, v]) => el("li", {}, el("span", {}, k), el("strong", {}, v)))));
      const stats = await api("GET", "/stats?hours=48");
      parts.push(el("h3", {}, "The last 48 hours"),
        chart("Messages per hour", stats, [["received", "received", "c1"], ["submitted", "sent by users", "c2"],
          ["delivered", "delivered out", "c3"], ["refused", "refused", "c4"]]),
        chart("Logins per hour", stats, [["login:imap", "IMAP", "c1"], ["login:smtp", "SMTP", "c2"], ["login:web", "web", "c3"],
          ["login_failed:imap", "IMAP failed", "c4"], ["login_failed:smtp", "SMTP failed", "c5"], ["login_failed:web", "web failed", "c6"]]));
      const reasons = Object.entries(stats.series).filter(([k]) => k.startsWith("refused:"))
        .map(([k, v]) => [k.slice(8), v.reduce((a, b) => a + b, 0)]).sort((a, b) => b[1] - a[1]);
      parts.push(el("h3", {}, "Refusals by reason"), reasons.length ? table(["Reason", "Count"], reasons) : el("p", {}, "None."));
      if (bans.length) parts.push(el("h3", {}, "Bans"), table(["Network", "Until", "Reason"], bans.map((b) => [b.net, date(b.until), b.reason])));
      const certs = await api("GET", "/dashboard/certificates");
      // One list: the [tls] files and the store's certificates, as the audit reads them.
      parts.push(el("h3", {}, "Certificates"), el("div", { id: "certificates" }, table(["", "Certificate", "Names", "Expires", "Days left", "Issuer", "Used by"], certs.map((c) => [
        el("span", { class: "mark " + c.status }, c.status === "ok" ? "✓ ok" : "✗ " + c.status), c.file, c.names.join(", "),
        c.not_after ? date(c.not_after) : c.problem, c.days_left === null ? "" : c.days_left, c.self_signed ? "self-signed" : "CA",
        c.used_by.join(", ") || "-"]))));
      const box = el("div", { id: "audit" });
      parts.push(el("h3", {}, "Security audit"), box);
      auditReport(box, await api("GET", "/audit"));
    } else {
      const held = await api("GET", "/me/quarantine");
      parts.push(el("p", {}, held.length + " message(s) held for you in quarantine."));
    }
    show("Dashboard", ...parts);
  },

  async users() {
    const list = await api("GET", "/users");
    const detail = el("div", { id: "user-detail" });
    const rows = list.map((u) => [u.address, u.role, u.totp ? "on" : "off", u.suspended ? "suspended" : "active", quotaText(u.quota), date(u.created),
      el("span", { class: "actions" },
        button("Details", () => userDetail(detail, u.address)),
        button(u.suspended ? "Restore" : "Suspend", async () => {
          await api("PUT", "/users/" + encodeURIComponent(u.address) + "/suspended", { suspended: !u.suspended });
          await route();
        }),
        button(u.role === "admin" ? "Make user" : "Make admin", async () => {
          await api("PUT", "/users/" + encodeURIComponent(u.address) + "/role", { role: u.role === "admin" ? "user" : "admin" });
          await route();
        }),
        u.totp ? button("Turn 2FA off", async () => { await api("DELETE", "/users/" + encodeURIComponent(u.address) + "/totp"); await route(); }) : "",
        button("Delete", async () => {
          if (!confirm("Delete " + u.address + " with all its mail?")) return;
          await api("DELETE", "/users/" + encodeURIComponent(u.address)); await route();
        }, "danger"))]);
    show("Users", table(["Address", "Role", "2FA", "State", "Sent today (quota)", "Created", ""], rows), detail, el("h3", {}, "Add a user"),
      form([["address", "Address", "email", { required: true }], ["password", "Password", "password", { autocomplete: "new-password", required: true }],
        ["role", "Role (user or admin)", "text", { value: "user" }]], "Add user", async (v) => {
        await api("POST", "/users", v); await route(); notice("Added " + v.address, "ok");
      }));
  },

  async domains() {
    const list = await api("GET", "/domains");
    const records = el("div", { id: "dns-records" });
    const check = async (d) => {
      records.replaceChildren(el("p", {}, "Looking up the records of " + d + "…"));
      const rows = await api("GET", "/domains/" + encodeURIComponent(d) + "/dns");
      records.replaceChildren(el("h3", {}, "DNS records of " + d),
        table(["", "Name", "Type", "Should be", "Found"], rows.map((r) => [
          el("span", { class: "mark " + r.status }, r.status === "ok" ? "✓ ok" : "✗ " + r.status), r.name, r.rtype,
          el("code", {}, r.expected), r.found.join(" | ")])));
    };
    show("Domains", table(["Domain", ""], list.map((d) => [d, el("span", { class: "actions" },
      button("Check DNS", () => check(d)),
      button("Remove", async () => { await api("DELETE", "/domains/" + encodeURIComponent(d)); await route(); }, "danger"))])),
      records,
      el("h3", {}, "Add a domain"),
      form([["name", "Domain", "text", { required: true }]], "Add domain", async (v) => { await api("POST", "/domains", v); await route(); }));
  },

  async aliases() {
    const list = await api("GET", "/aliases");
    show("Aliases", table(["Alias", "Delivers to", ""], list.map((a) => [a.alias, a.target,
      button("Remove", async () => { await api("DELETE", "/aliases/" + encodeURIComponent(a.alias) + "?target=" + encodeURIComponent(a.target)); await route(); }, "danger")])),
      el("h3", {}, "Add an alias"),
      form([["alias", "Alias", "email", { required: true }], ["target", "Delivers to", "email", { required: true }]], "Add alias", async (v) => {
        await api("POST", "/aliases", v); await route(); notice("Added " + v.alias, "ok");
      }));
  },

  async server() {
    const [bans, queue, dkim, dmarc, firewall] = await Promise.all([api("GET", "/bans"), api("GET", "/queue"), api("GET", "/dkim"),
      api("GET", "/dmarc/reports"), api("GET", "/firewall")]);
    show("Server",
      el("h3", {}, "Bans"),
      table(["Network", "Until", "Reason", "Offences", ""], bans.map((b) => [b.net, date(b.until), b.reason, b.offenses,
        button("Lift", async () => { await api("DELETE", "/bans?net=" + encodeURIComponent(b.net)); await route(); }, "danger")])),
      form([["net", "Address or network", "text", { required: true }], ["hours", "Hours", "number", { value: "24", min: "1" }]], "Ban", async (v) => {
        await api("POST", "/bans", { net: v.net, seconds: Number(v.hours || 24) * 3600 }); await route(); notice("Banned " + v.net, "ok");
      }),
      el("h3", {}, "Message search"),
      form([["address", "Recipient account (empty: all)", "email", {}], ["message_id", "Message-ID (empty: any)", "text", {}],
        ["since", "Received since", "date", {}], ["until", "Received before", "date", {}]],
        "Search", async (v) => {
          const q = new URLSearchParams();
          if (v.address) q.set("address", v.address);
          if (v.message_id) q.set("message_id", v.message_id);
          if (v.since) q.set("since", String(Date.parse(v.since) / 1000));
          if (v.until) q.set("until", String(Date.parse(v.until) / 1000));
          const found = await api("GET", "/messages?" + q.toString());
          const out = document.getElementById("search-results");
          const trail = el("pre", { id: "trail" });
          out.replaceChildren(found.length ? table(["Received", "Mailbox", "Size", "Verdict", ""], found.map((m) => [date(m.received), m.mailbox, m.size,
            m.verdict || "-", button("Why", async () => {
              const why = await api("GET", "/messages/" + encodeURIComponent(m.id) + "/why");
              trail.textContent = why.map((w) => w.mailbox + "\n" + w.trail).join("\n");
            })])) : el("p", {}, "No messages."), trail);
        }),
      el("div", { id: "search-results" }),
      el("h3", {}, "Firewall rules"),
      firewall.length ? table(["Scope", "Kind", "Network"], firewall.map((r) => [r.scope, r.kind, r.net]))
        : el("p", {}, "No rules: every address may connect (the guard's limits and bans still apply)."),
      el("p", {}, "Rules are in the configuration file ([guard] and each listener's allow and deny); SIGHUP reloads them."),
      el("h3", {}, "Outbound queue"),
      queue.length ? table(["Queued", "From", "Recipient", "State", "Attempts", "Next try", "Last error", ""],
        queue.flatMap((e) => e.rcpts.map((r, i) => [date(e.created), e.sender || "<>", r.rcpt, r.state, r.attempts, date(r.next_attempt), r.last_error,
          i ? "" : el("span", { class: "actions" },
            button("Retry", async () => { await api("POST", "/queue/" + encodeURIComponent(e.id) + "/retry"); await route(); }),
            button("Delete", async () => { await api("DELETE", "/queue/" + encodeURIComponent(e.id)); await route(); }, "danger"))])))
        : el("p", {}, "The queue is empty."),
      el("h3", {}, "DKIM keys"),
      table(["Domain", "Selector", "Algorithm", "State", "DNS name"], dkim.map((k) => [k.domain, k.selector, k.algorithm, k.active ? "signing" : "waiting or retired", k.record])),
      el("p", {}, "The records to publish: ", el("code", {}, "rampart dns records DOMAIN")),
      el("h3", {}, "DMARC reports received"),
      dmarc.length ? table(["Domain", "From", "Period", "Messages", "Passed"], dmarc.map((r) => [r.domain, r.org_name, date(r.begin) + " – " + date(r.end), r.messages, r.passed]))
        : el("p", {}, "None yet."));
  },

  async quarantine() {
    const admin = state.me.role === "admin";
    const list = await api("GET", admin ? "/quarantine" : "/me/quarantine");
    const release = (id) => api("POST", (admin ? "/quarantine/" : "/me/quarantine/") + encodeURIComponent(id) + "/release");
    show("Quarantine", list.length ? table(["Held", "From", "Subject", "Score", "Reason", ""], list.map((h) => [date(h.created), h.sender, h.subject,
      h.score === null ? "-" : h.score.toFixed(1), h.reason, button("Release", async () => { await release(h.id); await route(); })]))
      : el("p", {}, "Nothing is held."));
  },

  async account() {
    const [apps, logins, pgp, enc] = await Promise.all([api("GET", "/me/app-passwords"), api("GET", "/me/logins"), api("GET", "/me/pgp"),
      api("GET", "/me/encryption")]);
    // With per-user encryption a new app password must open the mail: the server wraps the
    // key under it, which takes the account password.
    const appFields = [["name", "Name (e.g. phone)", "text", { required: true }]];
    if (enc && enc.enabled) appFields.push(["password", "Your password (your mail is encrypted for you)", "password", { autocomplete: "current-password", required: true }]);
    const out = el("div", { id: "shown-once" });
    show("My account",
      el("h3", {}, "Password"),
      form([["current", "Current password", "password", { autocomplete: "current-password", required: true }],
        ["new", "New password", "password", { autocomplete: "new-password", required: true }]], "Change password", async (v, f) => {
        await api("POST", "/me/password", v); f.reset(); notice("Password changed; your other sessions were logged out.", "ok");
      }),
      el("h3", {}, "Two-factor authentication"),
      state.me.totp
        ? el("div", {},
          el("p", {}, "Two-factor authentication is on."),
          form([["password", "Password", "password", { required: true }]], "New recovery codes", async (v, f) => {
            const r = await api("POST", "/me/totp/recovery-codes", v);
            f.reset();
            document.getElementById("shown-once").replaceChildren(el("p", { class: "notice ok" }, "New recovery codes (shown once):"),
              el("ul", { id: "recovery-codes", class: "codes" }, r.recovery_codes.map((c) => el("li", {}, el("code", {}, c)))));
          }),
          form([["password", "Password (to turn it off)", "password", { required: true }]], "Turn two-factor off", async (v) => {
            await api("DELETE", "/me/totp", v); state.me = await api("GET", "/me"); await route();
          }))
        : el("p", {}, el("a", { href: "#totp" }, "Set up two-factor authentication")),
      el("h3", {}, "App passwords (for mail apps: IMAP and SMTP)"),
      table(["Name", "Created", "Last used", ""], apps.map((a) => [a.name, date(a.created), date(a.last_used),
        button("Revoke", async () => { await api("DELETE", "/me/app-passwords/" + encodeURIComponent(a.name)); await route(); }, "danger")])),
      form(appFields, "Create app password", async (v) => {
        const r = await api("POST", "/me/app-passwords", v);
        await views.account();
        document.getElementById("shown-once").replaceChildren(el("p", { class: "notice ok" }, "App password " + r.name + " (shown once): ", el("code", {}, r.password)));
      }),
      out,
      el("h3", {}, "OpenPGP key (your mail is stored encrypted to it)"),
      pgp
        ? el("div", { id: "pgp-key" },
          el("p", {}, "Fingerprint ", el("code", {}, pgp.fingerprint), ", expires " + (pgp.expires ? date(pgp.expires) : "never") +
            (pgp.protect_subject ? "; the Subject is hidden too" : "") + (pgp.publish ? "; published for senders (WKD)." : ".")),
          el("p", {}, "Server-side search of this mail: " + pgp.server_search_detail + "."),
          button("Remove key", async () => { await api("DELETE", "/me/pgp"); await route(); }, "danger"))
        : el("p", {}, "No key: mail is stored as received. With a key, the server can no longer read your new mail; it still searches it where the store keeps a protected search summary (see below)."),
      form([["key", "Public key, armored (gpg --armor --export)", "file", { accept: ".asc,.txt,text/plain", required: true }],
        ["protect_subject", "Hide the Subject too", "checkbox"], ["no_publish", "Do not publish it for senders (WKD)", "checkbox"],
        ["search", "Let the server search it even on a store without encryption at rest (its words are then kept in clear)", "checkbox"]],
      pgp ? "Replace key" : "Set key", async (v) => {
        await api("PUT", "/me/pgp", { key: await v.key.text(), protect_subject: !!v.protect_subject, publish: !v.no_publish, search: !!v.search });
        await route();
      }),
      el("h3", {}, "Mail apps"),
      el("p", {}, el("a", { href: "/api/v1/me/mobileconfig", download: "mail.mobileconfig" }, "Configuration profile for iPhone, iPad and Mac")),
      el("h3", {}, "Login history"),
      table(["Network", "Protocol", "Last", "First", "Logins"], logins.map((l) => [l.net, l.proto, date(l.last), date(l.first), l.logins])),
      el("h3", {}, "Sessions"),
      button("Log out everywhere", async () => { await api("POST", "/logout-all"); state.me = null; go("login"); }, "danger"));
  },

  async totp(password) {
    if (state.me.totp) { go("account"); return; }
    let r;
    try {
      r = await api("POST", "/me/totp", password === undefined ? undefined : { password });
    } catch (e) {
      // A session that logged in a while ago confirms the password first.
      if (e.code !== "reauth_required") throw e;
      show("Set up two-factor authentication", el("p", { class: "notice info" }, e.message),
        form([["password", "Password", "password", { autocomplete: "current-password", required: true }]], "Continue",
          async (v) => views.totp(v.password)));
      return;
    }
    const img = el("img", { src: "data:image/svg+xml;base64," + btoa(r.qr_svg), alt: "QR code of the TOTP secret", width: 200, height: 200 });
    show("Set up two-factor authentication",
      state.me.enroll_2fa_first ? el("p", { class: "notice info" }, "Administrators need two-factor authentication before anything else.") : "",
      el("p", {}, "Scan this code with an authenticator app, or type the secret:"), img, el("p", {}, el("code", { id: "totp-secret" }, r.secret)),
      form([["code", "The 6-digit code the app shows", "text", { inputmode: "numeric", required: true }]], "Confirm", async (v) => {
        const done = await api("POST", "/me/totp/confirm", v);
        state.me = await api("GET", "/me");
        nav();
        show("Recovery codes", el("p", {}, "Keep these somewhere safe. Each works once instead of a code, if you lose your phone."),
          el("ul", { id: "recovery-codes", class: "codes" }, done.recovery_codes.map((c) => el("li", {}, el("code", {}, c)))),
          el("p", {}, el("a", { href: "#home" }, "Continue")));
      }));
  },
};

async function route() {
  let view = location.hash.slice(1) || "home";
  if (!state.me && view !== "login") {
    try { state.me = await api("GET", "/me"); state.csrf = state.me.csrf; } catch (e) { view = "login"; }
  }
  if (state.me && state.me.enroll_2fa_first && !["totp", "logout"].includes(view)) view = "totp";
  if (!views[view]) view = "home";
  nav();
  try { await views[view](); } catch (e) { if (e.status !== 401) notice(e.message); }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);
