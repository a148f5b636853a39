
use builtin;
use str;

set edit:completion:arg-completer[hulykvs] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'hulykvs'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'hulykvs'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the HTTP service (it answers probes at once and applies pending migrations beside)'
            cand migrate 'Apply pending database migrations and exit'
            cand reencrypt 'Rewrite stored values under the first encryption key (or back to plaintext), online'
            cand dump 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot'
            cand restore 'Write the rows of a dump into a store, in batches'
            cand copy 'Copy one store into another, then verify each namespace'
            cand put 'Store a value'
            cand get 'Print a value''s raw bytes'
            cand delete 'Delete a value'
            cand list 'List the keys of a namespace, one a line (with --values, their values too)'
            cand txn 'Run a transaction: ops from a JSON file or stdin, all applied or none'
            cand watch 'Follow the changes of a namespace, one a line, reconnecting by itself'
            cand token 'Print a signed HS256 token for the service'
            cand acl 'Test a namespace ACL policy: what it allows a token, and by which rule'
            cand completions 'Print a shell completion script'
            cand bench 'Load-test a running service: throughput, latency percentiles, answers by status'
            cand check 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)'
            cand probe 'Health check: exit 0 when the service''s /readyz answers 200, 1 otherwise (the image''s HEALTHCHECK)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'hulykvs;serve'= {
            cand --db-connection 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]'
            cand --db-scheme 'Schema holding the tables (PostgreSQL and CockroachDB)'
            cand --db-connect-timeout 'Time allowed to open a database connection'
            cand --db-pool-size 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000'
            cand --db-pool-timeout 'Longest wait for a free pooled connection before answering 503'
            cand --db-statement-timeout 'Longest wait for one database statement before answering 503'
            cand --token-secret 'HS256 secret that tokens are signed with'
            cand --token-secret-previous 'A second HS256 secret whose tokens are still accepted during a rotation; nothing is signed with it. Drop it once the old tokens have expired'
            cand --require-secret 'Refuse to start with the default secret "secret" (true or false; the flag alone is true)'
            cand --bind-host 'Address to listen on'
            cand --bind-port 'Port to listen on (0 picks a free one)'
            cand --payload-size-limit 'Largest value accepted: bytes, or kb/mb/gb (powers of 1000), kib/mib/gib (of 1024)'
            cand --default-workspace 'Workspace of the legacy /api routes'
            cand --header-timeout 'Time a client has to send a request''s headers'
            cand --body-timeout 'Time a client has to send a request''s body'
            cand --idle-timeout 'An idle keep-alive connection is closed after this long'
            cand --max-connections 'Most client connections served at once (1 to 1000000); more wait to be accepted'
            cand --tls-cert 'Serve HTTPS with this PEM certificate chain (needs --tls-key); reloaded when it changes or on SIGHUP'
            cand --tls-key 'PEM private key of the TLS certificate'
            cand --tls-client-ca 'Require client certificates signed by this PEM CA (mutual TLS)'
            cand --encryption-keys 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list'
            cand --acl-file 'TOML policy of which tokens may read or write which namespaces ([[allow]] rules); unset: every token may use every namespace of its workspaces. Reloaded when it changes or on SIGHUP'
            cand --cors-origins 'Browser origins answered with CORS headers: unset for any (with credentials, as the previous service), a comma list of origins such as https://huly.example, or off'
            cand --max-ttl 'Longest expiry a write may ask for with Huly-TTL or Huly-Expire-At, such as 30d [default: no limit]'
            cand --expiry-sweep 'How often expired values are swept from the database'
            cand --changes-retention 'How long the change feed keeps a change; a watch or long poll from an older revision answers 410 revision_compacted'
            cand --watch-poll 'How often watched namespaces are polled for changes written through other instances (CockroachDB has no notifications; on PostgreSQL this backs up LISTEN/NOTIFY)'
            cand --watch-buffer 'Most events a watch stream may fall behind before it ends with event error too_slow'
            cand --metrics 'Serve Prometheus metrics at GET /metrics (on or off)'
            cand --worker-threads 'Threads that serve requests: a number, 1 to 1024, or auto (one per CPU the process may use). One spends the least CPU per request; more serve more than one core''s worth'
            cand --console 'Serve the web console at GET /console (on or off)'
            cand --log-format 'Log lines as text (for people) or json (one object per line)'
            cand --shutdown-timeout 'On SIGTERM or Ctrl-C, how long in-flight requests get to finish'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;migrate'= {
            cand --db-connection 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]'
            cand --db-scheme 'Schema holding the tables (PostgreSQL and CockroachDB)'
            cand --db-connect-timeout 'Time allowed to open a database connection'
            cand --db-pool-size 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000'
            cand --db-pool-timeout 'Longest wait for a free pooled connection before answering 503'
            cand --db-statement-timeout 'Longest wait for one database statement before answering 503'
            cand --status 'List applied and pending migrations instead of applying them'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;reencrypt'= {
            cand --db-connection 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]'
            cand --db-scheme 'Schema holding the tables (PostgreSQL and CockroachDB)'
            cand --db-connect-timeout 'Time allowed to open a database connection'
            cand --db-pool-size 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000'
            cand --db-pool-timeout 'Longest wait for a free pooled connection before answering 503'
            cand --db-statement-timeout 'Longest wait for one database statement before answering 503'
            cand --encryption-keys 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list'
            cand --batch 'Rows read and rewritten at a time (memory is about this many of the largest values)'
            cand --decrypt 'Rewrite every sealed row back to plaintext, so a release without encryption reads the database again (the keys are still needed to open the rows)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;dump'= {
            cand --db-connection 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]'
            cand --db-scheme 'Schema holding the tables (PostgreSQL and CockroachDB)'
            cand --db-connect-timeout 'Time allowed to open a database connection'
            cand --db-pool-size 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000'
            cand --db-pool-timeout 'Longest wait for a free pooled connection before answering 503'
            cand --db-statement-timeout 'Longest wait for one database statement before answering 503'
            cand --encryption-keys 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list'
            cand -w 'Only this workspace (repeat for more)'
            cand --workspace 'Only this workspace (repeat for more)'
            cand --namespace 'Only this namespace (repeat for more)'
            cand -o 'Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears under its name only once complete'
            cand --output 'Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears under its name only once complete'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;restore'= {
            cand --db-connection 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]'
            cand --db-scheme 'Schema holding the tables (PostgreSQL and CockroachDB)'
            cand --db-connect-timeout 'Time allowed to open a database connection'
            cand --db-pool-size 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000'
            cand --db-pool-timeout 'Longest wait for a free pooled connection before answering 503'
            cand --db-statement-timeout 'Longest wait for one database statement before answering 503'
            cand --encryption-keys 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list'
            cand -i 'Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin'
            cand --input 'Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin'
            cand --skip-existing 'Write only keys that hold no live value; by default every row is upserted'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;copy'= {
            cand --from 'The store to read: postgresql://… or sqlite:PATH'
            cand --to 'The store to write: postgresql://… or sqlite:PATH (migrated first)'
            cand --db-scheme 'Schema of the tables on PostgreSQL and CockroachDB, on both sides'
            cand --encryption-keys 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list'
            cand -w 'Only this workspace (repeat for more)'
            cand --workspace 'Only this workspace (repeat for more)'
            cand --namespace 'Only this namespace (repeat for more)'
            cand --skip-existing 'Write only keys that hold no live value in the target'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;put'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand --file 'Read the value from this file (`-`: stdin)'
            cand --content-type 'Content type stored with the value [default: application/octet-stream]'
            cand --if-match 'Write only if the current value has this ETag, quoted or bare (needs -w)'
            cand --ttl 'The value expires this long after it is written, such as 90s, 1h or 7d (Huly-TTL)'
            cand --expire-at 'The value expires at this unix second (Huly-Expire-At)'
            cand --if-exists 'Write only if a value is already stored (needs -w)'
            cand --if-absent 'Write only if no value is stored yet (needs -w)'
            cand --etag 'Print the new value''s ETag to stderr'
            cand --previous 'Print the value this write replaced to stdout, if there was one (needs -w)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;get'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand -o 'Write the value to this file instead of stdout (`-`: stdout)'
            cand --output 'Write the value to this file instead of stdout (`-`: stdout)'
            cand --etag 'Print the value''s ETag to stderr'
            cand --meta 'Print what is known of the value to stderr, a line each: etag, content-type, and for a value that expires, expire-at (unix seconds) and ttl (seconds left)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;delete'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand --if-match 'Delete only if the current value has this ETag, quoted or bare (needs -w)'
            cand --prefix 'Instead of one key, every key that starts with this literal prefix (needs -w); prints how many were deleted. An empty prefix (the whole namespace) needs --yes'
            cand --yes 'Confirms deleting a whole namespace with --prefix ""'
            cand --previous 'Print the value deleted to stdout (needs -w)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;list'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand --prefix 'Only keys that start with this literal prefix'
            cand --page-size 'Keys fetched per request (API v2; the legacy API sends all keys at once)'
            cand --json 'Print one JSON document in the service''s shape, all pages merged'
            cand --values 'With each key its value: one JSON object a line (key, value in base64, etag, content_type, expire_at); with --json, one document with every item'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;txn'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;watch'= {
            cand --url 'Base URL of the service'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --workspace 'Workspace UUID (API v2); without it, the legacy API and its default workspace'
            cand --timeout 'How long to wait for the service, such as 30s or 2m'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots'
            cand --client-cert 'PEM client certificate (chain) for mutual TLS; needs --client-key'
            cand --client-key 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)'
            cand --prefix 'Only changes of keys that start with this literal prefix'
            cand --since 'Start after this revision (the Huly-Revision of a listing or a write): its later changes are printed first. Without it, only changes from now on'
            cand --json 'One JSON object a line (revision, op, key, etag, expire_at), and a "sync" line once caught up'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;token'= {
            cand --account 'Account UUID the token speaks for [default: the system account]'
            cand --workspace 'Workspace UUID the token grants'
            cand --service 'Service name, stored as extra.service'
            cand --extra 'Extra claim K=V (repeatable)'
            cand --expires 'Lifetime, such as 90s, 1h or 7d; without it the token does not expire'
            cand --secret 'HS256 secret'
            cand --system 'Sign for the system account, which may use every workspace (the default without --account)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;acl'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'hulykvs;acl;check'= {
            cand --file 'The policy file to ask'
            cand --token 'A token to take the service (extra.service) and account from; its signature is not checked, as this asks the policy only'
            cand --service 'The service (a token''s extra.service) to ask for'
            cand --account 'The account UUID to ask for [default: the system account, as Huly''s services use]'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;acl;help'= {
            cand check 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'hulykvs;acl;help;check'= {
        }
        &'hulykvs;acl;help;help'= {
        }
        &'hulykvs;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;bench'= {
            cand --url 'Base URL of the service (plain http://)'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand --workload 'What each connection does, back to back'
            cand --mix 'Shares of the mixed workload, of get, put, cas and list; lists read <namespace>-list'
            cand -c 'Connections, each one keep-alive HTTP/1.1 connection with one request in flight'
            cand --connections 'Connections, each one keep-alive HTTP/1.1 connection with one request in flight'
            cand --duration 'How long to measure, such as 10s or 1m'
            cand --warmup 'How long to load the service before measuring; not counted'
            cand --keys 'Keys the requests spread over, named 0, 1, 2, … [default: 10000; 1000 for --workload list]'
            cand --list-keys 'Keys in <namespace>-list, the namespace the mixed workload lists'
            cand --value-size 'Bytes of each value written (random, from a pool of 64)'
            cand -w 'Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]'
            cand --workspace 'Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]'
            cand --namespace 'Namespace [default: bench; bench-list for --workload list]'
            cand --threads 'Threads of the load generator; one leaves the other cores to the service'
            cand --rate 'Watch workload: writes per second, spread over the run (0: idle streams only)'
            cand --watch-url 'Watch workload: open the streams on this service instead of --url (another instance on the same database), to measure delivery across instances'
            cand --legacy 'Use the legacy /api routes and their default workspace (no cas)'
            cand --json 'Print one JSON object instead of the table; progress still goes to stderr'
            cand --no-seed 'Do not write the keys first (they must already exist)'
            cand --http2 'Watch workload: open the streams over HTTP/2 (prior knowledge, up to 200 streams a connection) instead of one HTTP/1.1 connection each'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;check'= {
            cand --url 'Base URL of an instance; repeat it (or separate with commas) to spread the clients and watchers across instances that share one database'
            cand --token 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET'
            cand --token-secret 'HS256 secret to mint a system token with when no --token is given'
            cand -w 'Workspace to drill in [default: a new random one]; the drill writes only a namespace of its own (`check-…`), deleted at the end unless --keep'
            cand --workspace 'Workspace to drill in [default: a new random one]; the drill writes only a namespace of its own (`check-…`), deleted at the end unless --keep'
            cand --duration 'How long the traffic runs'
            cand --clients 'Concurrent clients'
            cand --keys 'Keys they share (collisions are the point)'
            cand --watchers 'Watchers of the change feed (every second one through a prefix)'
            cand --timeout 'Longest wait for one answer; past it the operation''s outcome is unknown'
            cand --budget 'Longest the linearizability checker may search; past it the answer is "undecided" (exit 3)'
            cand --seed 'Seed of the random choices, to replay a drill''s shape'
            cand --report 'Write the history (history.json) and a page with each key''s operations on a timeline (report.html) to this directory'
            cand --judge 'Judge the history an earlier drill wrote (its --report''s history.json) instead of running one'
            cand --keep 'Leave the drill''s namespace in place'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;probe'= {
            cand --url 'Base URL of the service [default: the local server, http or https as HULY_TLS_CERT says, on HULY_BIND_HOST and HULY_BIND_PORT]'
            cand --timeout 'How long to wait for the answer, such as 5s or 500ms'
            cand --bind-host 'The address the local server listens on (0.0.0.0 and :: are probed on loopback)'
            cand --bind-port 'The port the local server listens on'
            cand --tls-cert 'Set when the local server serves HTTPS: the default URL is then https. Its certificate is not checked against a name on that loopback URL (the probe sends no token)'
            cand --ca-cert 'PEM file of the CA certificate(s) to trust for an https --url'
            cand --client-cert 'PEM client certificate for a server that asks for one (HULY_TLS_CLIENT_CA); needs --client-key'
            cand --client-key 'PEM private key of --client-cert'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'hulykvs;help'= {
            cand serve 'Run the HTTP service (it answers probes at once and applies pending migrations beside)'
            cand migrate 'Apply pending database migrations and exit'
            cand reencrypt 'Rewrite stored values under the first encryption key (or back to plaintext), online'
            cand dump 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot'
            cand restore 'Write the rows of a dump into a store, in batches'
            cand copy 'Copy one store into another, then verify each namespace'
            cand put 'Store a value'
            cand get 'Print a value''s raw bytes'
            cand delete 'Delete a value'
            cand list 'List the keys of a namespace, one a line (with --values, their values too)'
            cand txn 'Run a transaction: ops from a JSON file or stdin, all applied or none'
            cand watch 'Follow the changes of a namespace, one a line, reconnecting by itself'
            cand token 'Print a signed HS256 token for the service'
            cand acl 'Test a namespace ACL policy: what it allows a token, and by which rule'
            cand completions 'Print a shell completion script'
            cand bench 'Load-test a running service: throughput, latency percentiles, answers by status'
            cand check 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)'
            cand probe 'Health check: exit 0 when the service''s /readyz answers 200, 1 otherwise (the image''s HEALTHCHECK)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'hulykvs;help;serve'= {
        }
        &'hulykvs;help;migrate'= {
        }
        &'hulykvs;help;reencrypt'= {
        }
        &'hulykvs;help;dump'= {
        }
        &'hulykvs;help;restore'= {
        }
        &'hulykvs;help;copy'= {
        }
        &'hulykvs;help;put'= {
        }
        &'hulykvs;help;get'= {
        }
        &'hulykvs;help;delete'= {
        }
        &'hulykvs;help;list'= {
        }
        &'hulykvs;help;txn'= {
        }
        &'hulykvs;help;watch'= {
        }
        &'hulykvs;help;token'= {
        }
        &'hulykvs;help;acl'= {
            cand check 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
        }
        &'hulykvs;help;acl;check'= {
        }
        &'hulykvs;help;completions'= {
        }
        &'hulykvs;help;bench'= {
        }
        &'hulykvs;help;check'= {
        }
        &'hulykvs;help;probe'= {
        }
        &'hulykvs;help;help'= {
        }
    ]
    $completions[$command]
}
