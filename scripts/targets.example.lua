-- targets.example.lua — the targets of monitor.lua. Copy this file, list your endpoints,
-- and run: luafetch run monitor --targets my-targets.lua [--once | --metrics-port 9101]
-- (try this one from any folder: luafetch run mock_services 8080 &
--  luafetch run monitor --targets targets.example.lua --once)
--
-- Every field but name and url is optional:
--   name            unique, shown in output, alerts and metrics (label "target")
--   url             absolute, or "/path" under base_url (or --base)
--   method, headers, body     the request (default GET)
--   expect_status   a status or a list of them (default: any 2xx or 3xx, after redirects)
--   body_match      a Lua pattern the body must contain (escape magic characters: "%-", "%.")
--   body_not_match  a Lua pattern the body must not contain
--   max_latency     seconds the whole answer may take
--   tls_days        https: DOWN when the certificate expires in fewer days
--   timeout         seconds per check (default 10); verify, ca_file, max_redirects as http.request
return {
  interval = "10s",                       -- between rounds (--interval wins)
  base_url = "http://127.0.0.1:8080",     -- for the URLs below that start with "/" (--base wins)
  defaults = { timeout = 5 },             -- fields every target gets unless it sets them

  targets = {
    { name = "health", url = "/health", body_match = '"status":"ok"', max_latency = 0.5 },
    { name = "checkout", url = "/service/checkout", expect_status = 200 },
    { name = "flaky", url = "/flaky" },
    { name = "slow", url = "/slow?delay=0.3", max_latency = 0.2 },
    { name = "teapot", url = "/status/418", expect_status = { 418 } },
    { name = "no-errors", url = "/", body_not_match = "[Ee]rror" },
    -- a public site with a certificate that must stay valid for two more weeks:
    -- { name = "example.org", url = "https://example.org/", tls_days = 14 },
  },
}
