// Package api is Roost's REST API under /api/v1: node status and metrics,
// CRUD over the replicated tables (users, ACL rules, bans, retained
// messages, API keys), data export and import (docs/data-export-import.md),
// cluster membership and node backups, with authentication of API callers.
//
// The same routes are served two ways: Handler, for the TCP listener on
// api.bind, requires credentials; LocalHandler, for the unix socket
// <data_dir>/roost.sock that `roost ctl` uses, does not — the socket's
// file permissions (0600) are the credential, as with `emqx ctl`.
//
// # Authentication (Handler)
//
//   - API key: HTTP basic auth NAME:SECRET. The secret is shown once, at
//     creation; the store keeps hex sha256(salt || secret). Disabled or
//     expired keys get 401. Keys act as administrators. Basic auth never
//     checks admin passwords; its refusal says how admins log in.
//   - Admin: POST /api/v1/login {"username","password"} returns
//     {"token","expires_at","username","role"}; send "Authorization:
//     Bearer TOKEN". Tokens are HMAC-SHA256 signed with Options.TokenKey
//     (random per process when nil: tokens then die with the process and
//     hold only on the node that issued them), expire after
//     Options.TokenTTL (1h), and are revoked when the admin is deleted or
//     changes password. Role "viewer" may only GET. An admin imported from
//     EMQX 4 logs in with its EMQX password (salted md5), re-hashed to
//     bcrypt at the first login.
//
// # Conventions
//
// Bodies are JSON; unknown fields are refused. Errors are
// {"code","message"} with the HTTP status: 400 BAD_REQUEST (the message
// names the field, `field "password": required`; bulk items as
// `field "[3].password"`), 401 UNAUTHORIZED, 403 FORBIDDEN, 404
// NOT_FOUND, 405 METHOD_NOT_ALLOWED, 409 ALREADY_EXISTS, 413
// REQUEST_TOO_LARGE, 503 SERVICE_UNAVAILABLE (the store cannot take
// writes now), 500 INTERNAL_ERROR. Lists take ?page= (from 1) and ?limit=
// (default 100, at most 10000) and answer
// {"data":[...],"meta":{"page","limit","count","hasnext"}}. A path value
// containing '/' (a retained topic, a CIDR, an odd client id) may be sent
// with '/' escaped as %2F; it must be when it has empty levels or "."
// / ".." segments, which HTTP path cleaning would change.
//
// # Routes
//
//	POST   /api/v1/login                      admin login → bearer token
//	GET    /api/v1/status                     node identity, uptime, raft, listeners, authn in force
//	GET    /api/v1/metrics                    connections, subscriptions, messages, retained count
//	GET    /metrics                           Prometheus text format (Options.Prometheus, internal/metrics);
//	                                          open to anyone when Options.PublicMetrics (api.metrics_auth = false)
//	GET    /api/v1/data/digest                per-table count and sha256 at a raft index
//	GET    /api/v1/users[?kind=]              list (no hashes)
//	POST   /api/v1/users                      {user_id, password, is_superuser, kind}
//	POST   /api/v1/users/bulk                 [ ...same... ]: one commit, all or none
//	GET|PUT|DELETE /api/v1/users/{kind}/{id}  PUT {password?, is_superuser?}
//	GET|PUT|DELETE /api/v1/users/{id}         the same, kind = authn.user_id_type
//	GET    /api/v1/acl                        rules in evaluation order
//	POST   /api/v1/acl                        {kind, value, topic, action, permission} → rule with id
//	POST   /api/v1/acl/bulk                   [ ...same... ]: one commit, ids in order
//	GET|DELETE /api/v1/acl/{id}
//	GET    /api/v1/banned[?kind=]
//	POST   /api/v1/banned                     {kind, value, reason, until: RFC 3339 | duration}
//	GET|DELETE /api/v1/banned/{kind}/{value}  peerhost values are IPs or CIDRs, stored canonically
//	GET    /api/v1/retained[?topic=FILTER]    without payloads
//	GET|DELETE /api/v1/retained/{topic}       GET includes the payload (base64)
//	GET    /api/v1/api_keys
//	POST   /api/v1/api_keys                   {name, desc, expires_at, enabled} → with "secret", once
//	GET|PUT|DELETE /api/v1/api_keys/{name}    PUT {desc?, enabled?, expires_at? ("never")}
//	GET    /api/v1/config/overrides           cluster config overrides (config.go)
//	GET|PUT|DELETE /api/v1/config/overrides/{key}  PUT {value}: keys the nodes follow only
//	POST   /api/v1/data/export                {filename?, tables?, include?, to?} → file at backup.target (data.go)
//	GET    /api/v1/data/files                 files of the backup dir; ?remote=true: of backup.target
//	GET|DELETE /api/v1/data/files/{name}      GET downloads (administrators only); ?remote=true
//	POST   /api/v1/data/files                 upload (multipart "file"), validated before it is kept
//	POST   /api/v1/data/import                {filename, dry_run, replace, tables, format, ...}, or multipart with the file
//	GET    /api/v1/cluster                    members (cluster.go)
//	POST   /api/v1/cluster/join               {address}
//	POST   /api/v1/cluster/leave
//	POST   /api/v1/cluster/force-leave        {node}
//	POST   /api/v1/backups                    {name?, recipients?, passphrase?, to?} → node backup (backups.go)
//	GET    /api/v1/backups                    {location, remote, backups, schedule, targets}; ?remote=true
//	GET|DELETE /api/v1/backups/{name}         GET downloads; ?remote=true: at backup.target
//
// Export, import and node backup stream progress as NDJSON when the
// request accepts application/x-ndjson.
//
// # Dashboard
//
// Handler also serves the web dashboard (package dashboard) under
// /dashboard/, without credentials (the files hold no data), and
// redirects GET / there. LocalHandler does not.
//
// docs/rest-api.md lists every route; TestRoutesDocumented keeps it so.
package api
