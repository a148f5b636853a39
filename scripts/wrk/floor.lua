-- wrk load for scripts/bench: the HTTP floor, wrk's own plain GET of the URL
-- it is given (nginx's `return 200`, hulykvs's /livez), no token.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
