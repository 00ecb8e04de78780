// The certificates page: the same actions as `rampart cert`,
// over /api/v1/certificates. Loaded after app.js, whose helpers (el, api, table, form, button,
// show, notice, date, route, views) it uses.
"use strict";

// PEM needs its line breaks: text areas, not the shared form's one-line inputs.
function importForm() {
  const cert = el("textarea", { name: "cert", rows: 6, required: true });
  const key = el("textarea", { name: "key", rows: 4 });
  const f = el("form", {}, el("label", {}, "Certificate chain (PEM)", cert),
    el("label", {}, "Private key (PEM; empty to complete a CSR)", key), el("button", { type: "submit" }, "Import"));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api("POST", "/certificates", { cert: cert.value, key: key.value || undefined }); await route(); notice("Imported", "ok"); }
    catch (e) { notice(e.message); }
  });
  return f;
}

views.certificates = async function () {
  const certs = await api("GET", "/certificates");
  const rows = certs.map((c) => [String(c.id), c.names.join(", "), c.key_type, c.source,
    c.pending ? "pending CSR" : date(c.not_after), c.issuer || "-", c.used_by.join(", ") || "-",
    button("Delete", async () => { await api("DELETE", "/certificates/" + c.id); await route(); }, "danger")]);
  const csrOut = el("div", { id: "csr-out" });
  show("Certificates",
    table(["Id", "Names", "Key", "Source", "Expires", "Issuer", "Used by", ""], rows),
    el("h3", {}, "Use a certificate"),
    form([["id", "Certificate id", "number", { required: true }], ["usage", "listener, host or smart-host", "text", { required: true }],
      ["target", "Listener, host or smart host name", "text", { required: true }]], "Assign", async (v) => {
      await api("POST", "/certificates/" + Number(v.id) + "/uses", { usage: v.usage, target: v.target }); await route();
    }),
    el("h3", {}, "New self-signed certificate"),
    form([["names", "Names (space-separated)", "text", { required: true }], ["key_type", "Key type (ecdsa-p256 or rsa-2048)", "text", {}]],
      "Create", async (v) => {
        await api("POST", "/certificates/self-signed", { names: v.names.split(/\s+/).filter(Boolean), key_type: v.key_type || undefined }); await route();
      }),
    el("h3", {}, "Certificate signing request"),
    form([["names", "Names (space-separated)", "text", { required: true }], ["key_type", "Key type (ecdsa-p256 or rsa-2048)", "text", {}]],
      "Make CSR", async (v) => {
        const r = await api("POST", "/certificates/csr", { names: v.names.split(/\s+/).filter(Boolean), key_type: v.key_type || undefined });
        csrOut.replaceChildren(el("pre", {}, r.csr));
      }),
    csrOut,
    el("h3", {}, "Import"),
    importForm(),
    el("h3", {}, "Order by ACME"),
    form([["names", "Names (space-separated)", "text", { required: true }]], "Order", async (v) => {
      const r = await api("POST", "/certificates/acme", { names: v.names.split(/\s+/).filter(Boolean) });
      notice("Order " + r.request + " queued; the certificate appears here when issued.", "ok");
    }));
};
