"""The console: server-rendered pages for ops, auditors and tenants at `/console`.

Pages are Jinja2 templates over the registry's own services (the same authz rules as the API:
scopes, then tenant ownership, another tenant's things answer 404). Charts and the lineage graph
are inline SVG drawn here; the only script is `static/console.js` (live job updates). Sign-in
takes client credentials once and keeps the access token in an HttpOnly, SameSite=Strict cookie
(never the secret); every form carries a CSRF token derived from that cookie.
"""
