# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hulykvs_global_optspecs
    string join \n h/help V/version
end

function __fish_hulykvs_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hulykvs_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hulykvs_using_subcommand
    set -l cmd (__fish_hulykvs_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hulykvs -n "__fish_hulykvs_needs_command" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "serve" -d 'Run the HTTP service (it answers probes at once and applies pending migrations beside)'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "reencrypt" -d 'Rewrite stored values under the first encryption key (or back to plaintext), online'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "dump" -d 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "restore" -d 'Write the rows of a dump into a store, in batches'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "copy" -d 'Copy one store into another, then verify each namespace'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "put" -d 'Store a value'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "get" -d 'Print a value\'s raw bytes'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "delete" -d 'Delete a value'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "list" -d 'List the keys of a namespace, one a line (with --values, their values too)'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "txn" -d 'Run a transaction: ops from a JSON file or stdin, all applied or none'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "watch" -d 'Follow the changes of a namespace, one a line, reconnecting by itself'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "token" -d 'Print a signed HS256 token for the service'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "acl" -d 'Test a namespace ACL policy: what it allows a token, and by which rule'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "bench" -d 'Load-test a running service: throughput, latency percentiles, answers by status'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "check" -d 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "probe" -d 'Health check: exit 0 when the service\'s /readyz answers 200, 1 otherwise (the image\'s HEALTHCHECK)'
complete -c hulykvs -n "__fish_hulykvs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-connection -d 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-scheme -d 'Schema holding the tables (PostgreSQL and CockroachDB)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-connect-timeout -d 'Time allowed to open a database connection' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-pool-size -d 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-pool-timeout -d 'Longest wait for a free pooled connection before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l db-statement-timeout -d 'Longest wait for one database statement before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l token-secret -d 'HS256 secret that tokens are signed with' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l token-secret-previous -d 'A second HS256 secret whose tokens are still accepted during a rotation; nothing is signed with it. Drop it once the old tokens have expired' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l require-secret -d 'Refuse to start with the default secret "secret" (true or false; the flag alone is true)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l bind-host -d 'Address to listen on' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l bind-port -d 'Port to listen on (0 picks a free one)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l payload-size-limit -d 'Largest value accepted: bytes, or kb/mb/gb (powers of 1000), kib/mib/gib (of 1024)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l default-workspace -d 'Workspace of the legacy /api routes' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l header-timeout -d 'Time a client has to send a request\'s headers' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l body-timeout -d 'Time a client has to send a request\'s body' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l idle-timeout -d 'An idle keep-alive connection is closed after this long' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l max-connections -d 'Most client connections served at once (1 to 1000000); more wait to be accepted' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this PEM certificate chain (needs --tls-key); reloaded when it changes or on SIGHUP' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l tls-key -d 'PEM private key of the TLS certificate' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l tls-client-ca -d 'Require client certificates signed by this PEM CA (mutual TLS)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l encryption-keys -d 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l acl-file -d 'TOML policy of which tokens may read or write which namespaces ([[allow]] rules); unset: every token may use every namespace of its workspaces. Reloaded when it changes or on SIGHUP' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l cors-origins -d 'Browser origins answered with CORS headers: unset for any (with credentials, as the previous service), a comma list of origins such as https://huly.example, or off' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l max-ttl -d 'Longest expiry a write may ask for with Huly-TTL or Huly-Expire-At, such as 30d [default: no limit]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l expiry-sweep -d 'How often expired values are swept from the database' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l changes-retention -d 'How long the change feed keeps a change; a watch or long poll from an older revision answers 410 revision_compacted' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l watch-poll -d 'How often watched namespaces are polled for changes written through other instances (CockroachDB has no notifications; on PostgreSQL this backs up LISTEN/NOTIFY)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l watch-buffer -d 'Most events a watch stream may fall behind before it ends with event error too_slow' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l metrics -d 'Serve Prometheus metrics at GET /metrics (on or off)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l worker-threads -d 'Threads that serve requests: a number, 1 to 1024, or auto (one per CPU the process may use). One spends the least CPU per request; more serve more than one core\'s worth' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l console -d 'Serve the web console at GET /console (on or off)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l log-format -d 'Log lines as text (for people) or json (one object per line)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -l shutdown-timeout -d 'On SIGTERM or Ctrl-C, how long in-flight requests get to finish' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand serve" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-connection -d 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-scheme -d 'Schema holding the tables (PostgreSQL and CockroachDB)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-connect-timeout -d 'Time allowed to open a database connection' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-pool-size -d 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-pool-timeout -d 'Longest wait for a free pooled connection before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l db-statement-timeout -d 'Longest wait for one database statement before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -l status -d 'List applied and pending migrations instead of applying them'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand migrate" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-connection -d 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-scheme -d 'Schema holding the tables (PostgreSQL and CockroachDB)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-connect-timeout -d 'Time allowed to open a database connection' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-pool-size -d 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-pool-timeout -d 'Longest wait for a free pooled connection before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l db-statement-timeout -d 'Longest wait for one database statement before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l encryption-keys -d 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l batch -d 'Rows read and rewritten at a time (memory is about this many of the largest values)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -l decrypt -d 'Rewrite every sealed row back to plaintext, so a release without encryption reads the database again (the keys are still needed to open the rows)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand reencrypt" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-connection -d 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-scheme -d 'Schema holding the tables (PostgreSQL and CockroachDB)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-connect-timeout -d 'Time allowed to open a database connection' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-pool-size -d 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-pool-timeout -d 'Longest wait for a free pooled connection before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l db-statement-timeout -d 'Longest wait for one database statement before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l encryption-keys -d 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -s w -l workspace -d 'Only this workspace (repeat for more)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -l namespace -d 'Only this namespace (repeat for more)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -s o -l output -d 'Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears under its name only once complete' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand dump" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-connection -d 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-scheme -d 'Schema holding the tables (PostgreSQL and CockroachDB)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-connect-timeout -d 'Time allowed to open a database connection' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-pool-size -d 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-pool-timeout -d 'Longest wait for a free pooled connection before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l db-statement-timeout -d 'Longest wait for one database statement before answering 503' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l encryption-keys -d 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -s i -l input -d 'Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -l skip-existing -d 'Write only keys that hold no live value; by default every row is upserted'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand restore" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l from -d 'The store to read: postgresql://… or sqlite:PATH' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l to -d 'The store to write: postgresql://… or sqlite:PATH (migrated first)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l db-scheme -d 'Schema of the tables on PostgreSQL and CockroachDB, on both sides' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l encryption-keys -d 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -s w -l workspace -d 'Only this workspace (repeat for more)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l namespace -d 'Only this namespace (repeat for more)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -l skip-existing -d 'Write only keys that hold no live value in the target'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand copy" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l file -d 'Read the value from this file (`-`: stdin)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l content-type -d 'Content type stored with the value [default: application/octet-stream]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l if-match -d 'Write only if the current value has this ETag, quoted or bare (needs -w)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l ttl -d 'The value expires this long after it is written, such as 90s, 1h or 7d (Huly-TTL)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l expire-at -d 'The value expires at this unix second (Huly-Expire-At)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l if-exists -d 'Write only if a value is already stored (needs -w)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l if-absent -d 'Write only if no value is stored yet (needs -w)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l etag -d 'Print the new value\'s ETag to stderr'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -l previous -d 'Print the value this write replaced to stdout, if there was one (needs -w)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand put" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -s o -l output -d 'Write the value to this file instead of stdout (`-`: stdout)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l etag -d 'Print the value\'s ETag to stderr'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -l meta -d 'Print what is known of the value to stderr, a line each: etag, content-type, and for a value that expires, expire-at (unix seconds) and ttl (seconds left)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand get" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l if-match -d 'Delete only if the current value has this ETag, quoted or bare (needs -w)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l prefix -d 'Instead of one key, every key that starts with this literal prefix (needs -w); prints how many were deleted. An empty prefix (the whole namespace) needs --yes' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l yes -d 'Confirms deleting a whole namespace with --prefix ""'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -l previous -d 'Print the value deleted to stdout (needs -w)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand delete" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l prefix -d 'Only keys that start with this literal prefix' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l page-size -d 'Keys fetched per request (API v2; the legacy API sends all keys at once)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l json -d 'Print one JSON document in the service\'s shape, all pages merged'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -l values -d 'With each key its value: one JSON object a line (key, value in base64, etag, content_type, expire_at); with --json, one document with every item'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand list" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand txn" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l url -d 'Base URL of the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -s w -l workspace -d 'Workspace UUID (API v2); without it, the legacy API and its default workspace' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l timeout -d 'How long to wait for the service, such as 30s or 2m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l client-cert -d 'PEM client certificate (chain) for mutual TLS; needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l client-key -d 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l prefix -d 'Only changes of keys that start with this literal prefix' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l since -d 'Start after this revision (the Huly-Revision of a listing or a write): its later changes are printed first. Without it, only changes from now on' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -l json -d 'One JSON object a line (revision, op, key, etag, expire_at), and a "sync" line once caught up'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand watch" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l account -d 'Account UUID the token speaks for [default: the system account]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l workspace -d 'Workspace UUID the token grants' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l service -d 'Service name, stored as extra.service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l extra -d 'Extra claim K=V (repeatable)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l expires -d 'Lifetime, such as 90s, 1h or 7d; without it the token does not expire' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l secret -d 'HS256 secret' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -l system -d 'Sign for the system account, which may use every workspace (the default without --account)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand token" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and not __fish_seen_subcommand_from check help" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -l file -d 'The policy file to ask' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -l token -d 'A token to take the service (extra.service) and account from; its signature is not checked, as this asks the policy only' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -l service -d 'The service (a token\'s extra.service) to ask for' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -l account -d 'The account UUID to ask for [default: the system account, as Huly\'s services use]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from help" -f -a "check" -d 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand acl; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand completions" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand completions" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l url -d 'Base URL of the service (plain http://)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l workload -d 'What each connection does, back to back' -r -f -a "get\t'GET random keys'
put\t'PUT random keys with fresh random values'
cas\t'GET a random key, then PUT it with `If-Match` its ETag; retry on 412'
list\t'GET the listing of a namespace of `--keys` keys'
mixed\t'A random choice per request, in the shares of `--mix`'
watch\t'`--connections` watch streams on one namespace while writers PUT at `--rate`: delivered events per second and the delivery latency'"
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l mix -d 'Shares of the mixed workload, of get, put, cas and list; lists read <namespace>-list' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -s c -l connections -d 'Connections, each one keep-alive HTTP/1.1 connection with one request in flight' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l duration -d 'How long to measure, such as 10s or 1m' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l warmup -d 'How long to load the service before measuring; not counted' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l keys -d 'Keys the requests spread over, named 0, 1, 2, … [default: 10000; 1000 for --workload list]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l list-keys -d 'Keys in <namespace>-list, the namespace the mixed workload lists' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l value-size -d 'Bytes of each value written (random, from a pool of 64)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -s w -l workspace -d 'Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l namespace -d 'Namespace [default: bench; bench-list for --workload list]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l threads -d 'Threads of the load generator; one leaves the other cores to the service' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l rate -d 'Watch workload: writes per second, spread over the run (0: idle streams only)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l watch-url -d 'Watch workload: open the streams on this service instead of --url (another instance on the same database), to measure delivery across instances' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l legacy -d 'Use the legacy /api routes and their default workspace (no cas)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l json -d 'Print one JSON object instead of the table; progress still goes to stderr'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l no-seed -d 'Do not write the keys first (they must already exist)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -l http2 -d 'Watch workload: open the streams over HTTP/2 (prior knowledge, up to 200 streams a connection) instead of one HTTP/1.1 connection each'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand bench" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l url -d 'Base URL of an instance; repeat it (or separate with commas) to spread the clients and watchers across instances that share one database' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l token -d 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l token-secret -d 'HS256 secret to mint a system token with when no --token is given' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -s w -l workspace -d 'Workspace to drill in [default: a new random one]; the drill writes only a namespace of its own (`check-…`), deleted at the end unless --keep' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l duration -d 'How long the traffic runs' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l clients -d 'Concurrent clients' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l keys -d 'Keys they share (collisions are the point)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l watchers -d 'Watchers of the change feed (every second one through a prefix)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l timeout -d 'Longest wait for one answer; past it the operation\'s outcome is unknown' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l budget -d 'Longest the linearizability checker may search; past it the answer is "undecided" (exit 3)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l seed -d 'Seed of the random choices, to replay a drill\'s shape' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l report -d 'Write the history (history.json) and a page with each key\'s operations on a timeline (report.html) to this directory' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l judge -d 'Judge the history an earlier drill wrote (its --report\'s history.json) instead of running one' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -l keep -d 'Leave the drill\'s namespace in place'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand check" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l url -d 'Base URL of the service [default: the local server, http or https as HULY_TLS_CERT says, on HULY_BIND_HOST and HULY_BIND_PORT]' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l timeout -d 'How long to wait for the answer, such as 5s or 500ms' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l bind-host -d 'The address the local server listens on (0.0.0.0 and :: are probed on loopback)' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l bind-port -d 'The port the local server listens on' -r
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l tls-cert -d 'Set when the local server serves HTTPS: the default URL is then https. Its certificate is not checked against a name on that loopback URL (the probe sends no token)' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l ca-cert -d 'PEM file of the CA certificate(s) to trust for an https --url' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l client-cert -d 'PEM client certificate for a server that asks for one (HULY_TLS_CLIENT_CA); needs --client-key' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -l client-key -d 'PEM private key of --client-cert' -r -F
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -s h -l help -d 'Print help'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand probe" -s V -l version -d 'Print version'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "serve" -d 'Run the HTTP service (it answers probes at once and applies pending migrations beside)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "migrate" -d 'Apply pending database migrations and exit'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "reencrypt" -d 'Rewrite stored values under the first encryption key (or back to plaintext), online'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "dump" -d 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "restore" -d 'Write the rows of a dump into a store, in batches'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "copy" -d 'Copy one store into another, then verify each namespace'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "put" -d 'Store a value'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "get" -d 'Print a value\'s raw bytes'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "delete" -d 'Delete a value'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "list" -d 'List the keys of a namespace, one a line (with --values, their values too)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "txn" -d 'Run a transaction: ops from a JSON file or stdin, all applied or none'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "watch" -d 'Follow the changes of a namespace, one a line, reconnecting by itself'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "token" -d 'Print a signed HS256 token for the service'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "acl" -d 'Test a namespace ACL policy: what it allows a token, and by which rule'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "completions" -d 'Print a shell completion script'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "bench" -d 'Load-test a running service: throughput, latency percentiles, answers by status'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "check" -d 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "probe" -d 'Health check: exit 0 when the service\'s /readyz answers 200, 1 otherwise (the image\'s HEALTHCHECK)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and not __fish_seen_subcommand_from serve migrate reencrypt dump restore copy put get delete list txn watch token acl completions bench check probe help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hulykvs -n "__fish_hulykvs_using_subcommand help; and __fish_seen_subcommand_from acl" -f -a "check" -d 'Print whether a policy lets a token read or write a namespace, and the rule that decides'
