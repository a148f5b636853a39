
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'hulykvs' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'hulykvs'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'hulykvs' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the HTTP service (it answers probes at once and applies pending migrations beside)')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations and exit')
            [CompletionResult]::new('reencrypt', 'reencrypt', [CompletionResultType]::ParameterValue, 'Rewrite stored values under the first encryption key (or back to plaintext), online')
            [CompletionResult]::new('dump', 'dump', [CompletionResultType]::ParameterValue, 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Write the rows of a dump into a store, in batches')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy one store into another, then verify each namespace')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print a value''s raw bytes')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a value')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys of a namespace, one a line (with --values, their values too)')
            [CompletionResult]::new('txn', 'txn', [CompletionResultType]::ParameterValue, 'Run a transaction: ops from a JSON file or stdin, all applied or none')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Follow the changes of a namespace, one a line, reconnecting by itself')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a signed HS256 token for the service')
            [CompletionResult]::new('acl', 'acl', [CompletionResultType]::ParameterValue, 'Test a namespace ACL policy: what it allows a token, and by which rule')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load-test a running service: throughput, latency percentiles, answers by status')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)')
            [CompletionResult]::new('probe', 'probe', [CompletionResultType]::ParameterValue, 'Health check: exit 0 when the service''s /readyz answers 200, 1 otherwise (the image''s HEALTHCHECK)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'hulykvs;serve' {
            [CompletionResult]::new('--db-connection', '--db-connection', [CompletionResultType]::ParameterName, 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema holding the tables (PostgreSQL and CockroachDB)')
            [CompletionResult]::new('--db-connect-timeout', '--db-connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to open a database connection')
            [CompletionResult]::new('--db-pool-size', '--db-pool-size', [CompletionResultType]::ParameterName, 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000')
            [CompletionResult]::new('--db-pool-timeout', '--db-pool-timeout', [CompletionResultType]::ParameterName, 'Longest wait for a free pooled connection before answering 503')
            [CompletionResult]::new('--db-statement-timeout', '--db-statement-timeout', [CompletionResultType]::ParameterName, 'Longest wait for one database statement before answering 503')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret that tokens are signed with')
            [CompletionResult]::new('--token-secret-previous', '--token-secret-previous', [CompletionResultType]::ParameterName, 'A second HS256 secret whose tokens are still accepted during a rotation; nothing is signed with it. Drop it once the old tokens have expired')
            [CompletionResult]::new('--require-secret', '--require-secret', [CompletionResultType]::ParameterName, 'Refuse to start with the default secret "secret" (true or false; the flag alone is true)')
            [CompletionResult]::new('--bind-host', '--bind-host', [CompletionResultType]::ParameterName, 'Address to listen on')
            [CompletionResult]::new('--bind-port', '--bind-port', [CompletionResultType]::ParameterName, 'Port to listen on (0 picks a free one)')
            [CompletionResult]::new('--payload-size-limit', '--payload-size-limit', [CompletionResultType]::ParameterName, 'Largest value accepted: bytes, or kb/mb/gb (powers of 1000), kib/mib/gib (of 1024)')
            [CompletionResult]::new('--default-workspace', '--default-workspace', [CompletionResultType]::ParameterName, 'Workspace of the legacy /api routes')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Time a client has to send a request''s headers')
            [CompletionResult]::new('--body-timeout', '--body-timeout', [CompletionResultType]::ParameterName, 'Time a client has to send a request''s body')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'An idle keep-alive connection is closed after this long')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most client connections served at once (1 to 1000000); more wait to be accepted')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with this PEM certificate chain (needs --tls-key); reloaded when it changes or on SIGHUP')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'PEM private key of the TLS certificate')
            [CompletionResult]::new('--tls-client-ca', '--tls-client-ca', [CompletionResultType]::ParameterName, 'Require client certificates signed by this PEM CA (mutual TLS)')
            [CompletionResult]::new('--encryption-keys', '--encryption-keys', [CompletionResultType]::ParameterName, 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list')
            [CompletionResult]::new('--acl-file', '--acl-file', [CompletionResultType]::ParameterName, 'TOML policy of which tokens may read or write which namespaces ([[allow]] rules); unset: every token may use every namespace of its workspaces. Reloaded when it changes or on SIGHUP')
            [CompletionResult]::new('--cors-origins', '--cors-origins', [CompletionResultType]::ParameterName, 'Browser origins answered with CORS headers: unset for any (with credentials, as the previous service), a comma list of origins such as https://huly.example, or off')
            [CompletionResult]::new('--max-ttl', '--max-ttl', [CompletionResultType]::ParameterName, 'Longest expiry a write may ask for with Huly-TTL or Huly-Expire-At, such as 30d [default: no limit]')
            [CompletionResult]::new('--expiry-sweep', '--expiry-sweep', [CompletionResultType]::ParameterName, 'How often expired values are swept from the database')
            [CompletionResult]::new('--changes-retention', '--changes-retention', [CompletionResultType]::ParameterName, 'How long the change feed keeps a change; a watch or long poll from an older revision answers 410 revision_compacted')
            [CompletionResult]::new('--watch-poll', '--watch-poll', [CompletionResultType]::ParameterName, 'How often watched namespaces are polled for changes written through other instances (CockroachDB has no notifications; on PostgreSQL this backs up LISTEN/NOTIFY)')
            [CompletionResult]::new('--watch-buffer', '--watch-buffer', [CompletionResultType]::ParameterName, 'Most events a watch stream may fall behind before it ends with event error too_slow')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics at GET /metrics (on or off)')
            [CompletionResult]::new('--worker-threads', '--worker-threads', [CompletionResultType]::ParameterName, 'Threads that serve requests: a number, 1 to 1024, or auto (one per CPU the process may use). One spends the least CPU per request; more serve more than one core''s worth')
            [CompletionResult]::new('--console', '--console', [CompletionResultType]::ParameterName, 'Serve the web console at GET /console (on or off)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (for people) or json (one object per line)')
            [CompletionResult]::new('--shutdown-timeout', '--shutdown-timeout', [CompletionResultType]::ParameterName, 'On SIGTERM or Ctrl-C, how long in-flight requests get to finish')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;migrate' {
            [CompletionResult]::new('--db-connection', '--db-connection', [CompletionResultType]::ParameterName, 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema holding the tables (PostgreSQL and CockroachDB)')
            [CompletionResult]::new('--db-connect-timeout', '--db-connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to open a database connection')
            [CompletionResult]::new('--db-pool-size', '--db-pool-size', [CompletionResultType]::ParameterName, 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000')
            [CompletionResult]::new('--db-pool-timeout', '--db-pool-timeout', [CompletionResultType]::ParameterName, 'Longest wait for a free pooled connection before answering 503')
            [CompletionResult]::new('--db-statement-timeout', '--db-statement-timeout', [CompletionResultType]::ParameterName, 'Longest wait for one database statement before answering 503')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'List applied and pending migrations instead of applying them')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;reencrypt' {
            [CompletionResult]::new('--db-connection', '--db-connection', [CompletionResultType]::ParameterName, 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema holding the tables (PostgreSQL and CockroachDB)')
            [CompletionResult]::new('--db-connect-timeout', '--db-connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to open a database connection')
            [CompletionResult]::new('--db-pool-size', '--db-pool-size', [CompletionResultType]::ParameterName, 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000')
            [CompletionResult]::new('--db-pool-timeout', '--db-pool-timeout', [CompletionResultType]::ParameterName, 'Longest wait for a free pooled connection before answering 503')
            [CompletionResult]::new('--db-statement-timeout', '--db-statement-timeout', [CompletionResultType]::ParameterName, 'Longest wait for one database statement before answering 503')
            [CompletionResult]::new('--encryption-keys', '--encryption-keys', [CompletionResultType]::ParameterName, 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Rows read and rewritten at a time (memory is about this many of the largest values)')
            [CompletionResult]::new('--decrypt', '--decrypt', [CompletionResultType]::ParameterName, 'Rewrite every sealed row back to plaintext, so a release without encryption reads the database again (the keys are still needed to open the rows)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;dump' {
            [CompletionResult]::new('--db-connection', '--db-connection', [CompletionResultType]::ParameterName, 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema holding the tables (PostgreSQL and CockroachDB)')
            [CompletionResult]::new('--db-connect-timeout', '--db-connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to open a database connection')
            [CompletionResult]::new('--db-pool-size', '--db-pool-size', [CompletionResultType]::ParameterName, 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000')
            [CompletionResult]::new('--db-pool-timeout', '--db-pool-timeout', [CompletionResultType]::ParameterName, 'Longest wait for a free pooled connection before answering 503')
            [CompletionResult]::new('--db-statement-timeout', '--db-statement-timeout', [CompletionResultType]::ParameterName, 'Longest wait for one database statement before answering 503')
            [CompletionResult]::new('--encryption-keys', '--encryption-keys', [CompletionResultType]::ParameterName, 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Only this workspace (repeat for more)')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Only this workspace (repeat for more)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Only this namespace (repeat for more)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears under its name only once complete')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears under its name only once complete')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;restore' {
            [CompletionResult]::new('--db-connection', '--db-connection', [CompletionResultType]::ParameterName, 'Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema holding the tables (PostgreSQL and CockroachDB)')
            [CompletionResult]::new('--db-connect-timeout', '--db-connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to open a database connection')
            [CompletionResult]::new('--db-pool-size', '--db-pool-size', [CompletionResultType]::ParameterName, 'Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000')
            [CompletionResult]::new('--db-pool-timeout', '--db-pool-timeout', [CompletionResultType]::ParameterName, 'Longest wait for a free pooled connection before answering 503')
            [CompletionResult]::new('--db-statement-timeout', '--db-statement-timeout', [CompletionResultType]::ParameterName, 'Longest wait for one database statement before answering 503')
            [CompletionResult]::new('--encryption-keys', '--encryption-keys', [CompletionResultType]::ParameterName, 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin')
            [CompletionResult]::new('--skip-existing', '--skip-existing', [CompletionResultType]::ParameterName, 'Write only keys that hold no live value; by default every row is upserted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;copy' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'The store to read: postgresql://… or sqlite:PATH')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The store to write: postgresql://… or sqlite:PATH (migrated first)')
            [CompletionResult]::new('--db-scheme', '--db-scheme', [CompletionResultType]::ParameterName, 'Schema of the tables on PostgreSQL and CockroachDB, on both sides')
            [CompletionResult]::new('--encryption-keys', '--encryption-keys', [CompletionResultType]::ParameterName, 'Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the first key, every listed key opens; a first entry `plaintext` writes new values unencrypted. Prefer the environment variable: a flag shows in the process list')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Only this workspace (repeat for more)')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Only this workspace (repeat for more)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Only this namespace (repeat for more)')
            [CompletionResult]::new('--skip-existing', '--skip-existing', [CompletionResultType]::ParameterName, 'Write only keys that hold no live value in the target')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;put' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Read the value from this file (`-`: stdin)')
            [CompletionResult]::new('--content-type', '--content-type', [CompletionResultType]::ParameterName, 'Content type stored with the value [default: application/octet-stream]')
            [CompletionResult]::new('--if-match', '--if-match', [CompletionResultType]::ParameterName, 'Write only if the current value has this ETag, quoted or bare (needs -w)')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'The value expires this long after it is written, such as 90s, 1h or 7d (Huly-TTL)')
            [CompletionResult]::new('--expire-at', '--expire-at', [CompletionResultType]::ParameterName, 'The value expires at this unix second (Huly-Expire-At)')
            [CompletionResult]::new('--if-exists', '--if-exists', [CompletionResultType]::ParameterName, 'Write only if a value is already stored (needs -w)')
            [CompletionResult]::new('--if-absent', '--if-absent', [CompletionResultType]::ParameterName, 'Write only if no value is stored yet (needs -w)')
            [CompletionResult]::new('--etag', '--etag', [CompletionResultType]::ParameterName, 'Print the new value''s ETag to stderr')
            [CompletionResult]::new('--previous', '--previous', [CompletionResultType]::ParameterName, 'Print the value this write replaced to stdout, if there was one (needs -w)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;get' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the value to this file instead of stdout (`-`: stdout)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the value to this file instead of stdout (`-`: stdout)')
            [CompletionResult]::new('--etag', '--etag', [CompletionResultType]::ParameterName, 'Print the value''s ETag to stderr')
            [CompletionResult]::new('--meta', '--meta', [CompletionResultType]::ParameterName, 'Print what is known of the value to stderr, a line each: etag, content-type, and for a value that expires, expire-at (unix seconds) and ttl (seconds left)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;delete' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('--if-match', '--if-match', [CompletionResultType]::ParameterName, 'Delete only if the current value has this ETag, quoted or bare (needs -w)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Instead of one key, every key that starts with this literal prefix (needs -w); prints how many were deleted. An empty prefix (the whole namespace) needs --yes')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Confirms deleting a whole namespace with --prefix ""')
            [CompletionResult]::new('--previous', '--previous', [CompletionResultType]::ParameterName, 'Print the value deleted to stdout (needs -w)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;list' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Only keys that start with this literal prefix')
            [CompletionResult]::new('--page-size', '--page-size', [CompletionResultType]::ParameterName, 'Keys fetched per request (API v2; the legacy API sends all keys at once)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document in the service''s shape, all pages merged')
            [CompletionResult]::new('--values', '--values', [CompletionResultType]::ParameterName, 'With each key its value: one JSON object a line (key, value in base64, etag, content_type, expire_at); with --json, one document with every item')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;txn' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;watch' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2); without it, the legacy API and its default workspace')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the service, such as 30s or 2m')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url, instead of (not in addition to) the built-in public roots')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate (chain) for mutual TLS; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Only changes of keys that start with this literal prefix')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Start after this revision (the Huly-Revision of a listing or a write): its later changes are printed first. Without it, only changes from now on')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object a line (revision, op, key, etag, expire_at), and a "sync" line once caught up')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;token' {
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'Account UUID the token speaks for [default: the system account]')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID the token grants')
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'Service name, stored as extra.service')
            [CompletionResult]::new('--extra', '--extra', [CompletionResultType]::ParameterName, 'Extra claim K=V (repeatable)')
            [CompletionResult]::new('--expires', '--expires', [CompletionResultType]::ParameterName, 'Lifetime, such as 90s, 1h or 7d; without it the token does not expire')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'HS256 secret')
            [CompletionResult]::new('--system', '--system', [CompletionResultType]::ParameterName, 'Sign for the system account, which may use every workspace (the default without --account)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;acl' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print whether a policy lets a token read or write a namespace, and the rule that decides')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'hulykvs;acl;check' {
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The policy file to ask')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'A token to take the service (extra.service) and account from; its signature is not checked, as this asks the policy only')
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The service (a token''s extra.service) to ask for')
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'The account UUID to ask for [default: the system account, as Huly''s services use]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;acl;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print whether a policy lets a token read or write a namespace, and the rule that decides')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'hulykvs;acl;help;check' {
            break
        }
        'hulykvs;acl;help;help' {
            break
        }
        'hulykvs;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;bench' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service (plain http://)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('--workload', '--workload', [CompletionResultType]::ParameterName, 'What each connection does, back to back')
            [CompletionResult]::new('--mix', '--mix', [CompletionResultType]::ParameterName, 'Shares of the mixed workload, of get, put, cas and list; lists read <namespace>-list')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Connections, each one keep-alive HTTP/1.1 connection with one request in flight')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Connections, each one keep-alive HTTP/1.1 connection with one request in flight')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long to measure, such as 10s or 1m')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'How long to load the service before measuring; not counted')
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Keys the requests spread over, named 0, 1, 2, … [default: 10000; 1000 for --workload list]')
            [CompletionResult]::new('--list-keys', '--list-keys', [CompletionResultType]::ParameterName, 'Keys in <namespace>-list, the namespace the mixed workload lists')
            [CompletionResult]::new('--value-size', '--value-size', [CompletionResultType]::ParameterName, 'Bytes of each value written (random, from a pool of 64)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace [default: bench; bench-list for --workload list]')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Threads of the load generator; one leaves the other cores to the service')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Watch workload: writes per second, spread over the run (0: idle streams only)')
            [CompletionResult]::new('--watch-url', '--watch-url', [CompletionResultType]::ParameterName, 'Watch workload: open the streams on this service instead of --url (another instance on the same database), to measure delivery across instances')
            [CompletionResult]::new('--legacy', '--legacy', [CompletionResultType]::ParameterName, 'Use the legacy /api routes and their default workspace (no cas)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of the table; progress still goes to stderr')
            [CompletionResult]::new('--no-seed', '--no-seed', [CompletionResultType]::ParameterName, 'Do not write the keys first (they must already exist)')
            [CompletionResult]::new('--http2', '--http2', [CompletionResultType]::ParameterName, 'Watch workload: open the streams over HTTP/2 (prior knowledge, up to 200 streams a connection) instead of one HTTP/1.1 connection each')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;check' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of an instance; repeat it (or separate with commas) to spread the clients and watchers across instances that share one database')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET')
            [CompletionResult]::new('--token-secret', '--token-secret', [CompletionResultType]::ParameterName, 'HS256 secret to mint a system token with when no --token is given')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Workspace to drill in [default: a new random one]; the drill writes only a namespace of its own (`check-…`), deleted at the end unless --keep')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'Workspace to drill in [default: a new random one]; the drill writes only a namespace of its own (`check-…`), deleted at the end unless --keep')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long the traffic runs')
            [CompletionResult]::new('--clients', '--clients', [CompletionResultType]::ParameterName, 'Concurrent clients')
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Keys they share (collisions are the point)')
            [CompletionResult]::new('--watchers', '--watchers', [CompletionResultType]::ParameterName, 'Watchers of the change feed (every second one through a prefix)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Longest wait for one answer; past it the operation''s outcome is unknown')
            [CompletionResult]::new('--budget', '--budget', [CompletionResultType]::ParameterName, 'Longest the linearizability checker may search; past it the answer is "undecided" (exit 3)')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the random choices, to replay a drill''s shape')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write the history (history.json) and a page with each key''s operations on a timeline (report.html) to this directory')
            [CompletionResult]::new('--judge', '--judge', [CompletionResultType]::ParameterName, 'Judge the history an earlier drill wrote (its --report''s history.json) instead of running one')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Leave the drill''s namespace in place')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;probe' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the service [default: the local server, http or https as HULY_TLS_CERT says, on HULY_BIND_HOST and HULY_BIND_PORT]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the answer, such as 5s or 500ms')
            [CompletionResult]::new('--bind-host', '--bind-host', [CompletionResultType]::ParameterName, 'The address the local server listens on (0.0.0.0 and :: are probed on loopback)')
            [CompletionResult]::new('--bind-port', '--bind-port', [CompletionResultType]::ParameterName, 'The port the local server listens on')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Set when the local server serves HTTPS: the default URL is then https. Its certificate is not checked against a name on that loopback URL (the probe sends no token)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'PEM file of the CA certificate(s) to trust for an https --url')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'PEM client certificate for a server that asks for one (HULY_TLS_CLIENT_CA); needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'PEM private key of --client-cert')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'hulykvs;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the HTTP service (it answers probes at once and applies pending migrations beside)')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations and exit')
            [CompletionResult]::new('reencrypt', 'reencrypt', [CompletionResultType]::ParameterValue, 'Rewrite stored values under the first encryption key (or back to plaintext), online')
            [CompletionResult]::new('dump', 'dump', [CompletionResultType]::ParameterValue, 'Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Write the rows of a dump into a store, in batches')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy one store into another, then verify each namespace')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print a value''s raw bytes')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a value')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys of a namespace, one a line (with --values, their values too)')
            [CompletionResult]::new('txn', 'txn', [CompletionResultType]::ParameterValue, 'Run a transaction: ops from a JSON file or stdin, all applied or none')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Follow the changes of a namespace, one a line, reconnecting by itself')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a signed HS256 token for the service')
            [CompletionResult]::new('acl', 'acl', [CompletionResultType]::ParameterValue, 'Test a namespace ACL policy: what it allows a token, and by which rule')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load-test a running service: throughput, latency percentiles, answers by status')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Drill a running deployment: concurrent clients and watchers, then the history checked against the consistency model (exit 0 held, 1 violated, 3 undecided)')
            [CompletionResult]::new('probe', 'probe', [CompletionResultType]::ParameterValue, 'Health check: exit 0 when the service''s /readyz answers 200, 1 otherwise (the image''s HEALTHCHECK)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'hulykvs;help;serve' {
            break
        }
        'hulykvs;help;migrate' {
            break
        }
        'hulykvs;help;reencrypt' {
            break
        }
        'hulykvs;help;dump' {
            break
        }
        'hulykvs;help;restore' {
            break
        }
        'hulykvs;help;copy' {
            break
        }
        'hulykvs;help;put' {
            break
        }
        'hulykvs;help;get' {
            break
        }
        'hulykvs;help;delete' {
            break
        }
        'hulykvs;help;list' {
            break
        }
        'hulykvs;help;txn' {
            break
        }
        'hulykvs;help;watch' {
            break
        }
        'hulykvs;help;token' {
            break
        }
        'hulykvs;help;acl' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print whether a policy lets a token read or write a namespace, and the rule that decides')
            break
        }
        'hulykvs;help;acl;check' {
            break
        }
        'hulykvs;help;completions' {
            break
        }
        'hulykvs;help;bench' {
            break
        }
        'hulykvs;help;check' {
            break
        }
        'hulykvs;help;probe' {
            break
        }
        'hulykvs;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
