# Shared by scripts/test and scripts/run: make sure Postgres and RabbitMQ answer on 127.0.0.1.
#
# It uses them where they already answer, starts them where they are installed but stopped,
# brings them up with docker compose where Docker runs, and otherwise says what is missing.

PG_HOST=127.0.0.1 PG_PORT=5432 AMQP_PORT=5672

answers() { # host port: true when something accepts TCP connections there
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # name host port seconds
  local deadline=$((SECONDS + $4))
  until answers "$2" "$3"; do
    if ((SECONDS >= deadline)); then
      echo "$0: $1 did not come up on $2:$3 within $4 s" >&2
      return 1
    fi
    sleep 1
  done
}

docker_runs() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

start_postgres() {
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "$0: starting the local PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  elif docker_runs; then
    echo "$0: starting PostgreSQL with docker compose"
    docker compose up -d --wait postgres
  else
    echo "$0: PostgreSQL is not answering on $PG_HOST:$PG_PORT, is not installed" \
      "(no pg_ctlcluster) and Docker is not running. Install PostgreSQL or start Docker." >&2
    exit 1
  fi
}

start_rabbitmq() {
  if command -v rabbitmq-server >/dev/null; then
    echo "$0: starting the local RabbitMQ"
    rabbitmq-server -detached
  elif docker_runs; then
    echo "$0: starting RabbitMQ with docker compose"
    docker compose up -d --wait rabbitmq
  else
    echo "$0: RabbitMQ is not answering on $PG_HOST:$AMQP_PORT, is not installed" \
      "(no rabbitmq-server) and Docker is not running. Install RabbitMQ or start Docker." >&2
    exit 1
  fi
}

# Starts what is missing (unless DATABASE_URL / AMQP_URL point elsewhere) and exports both URLs.
ensure_services() {
  if [ -z "${DATABASE_URL:-}" ] && ! answers "$PG_HOST" "$PG_PORT"; then
    start_postgres
    wait_for PostgreSQL "$PG_HOST" "$PG_PORT" 60
  fi
  if [ -z "${AMQP_URL:-}" ] && ! answers "$PG_HOST" "$AMQP_PORT"; then
    start_rabbitmq
    wait_for RabbitMQ "$PG_HOST" "$AMQP_PORT" 120
  fi
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres}"
  export AMQP_URL="${AMQP_URL:-amqp://guest:guest@$PG_HOST:$AMQP_PORT/%2f}"
}

# Deletes the queues of test namespaces (`t<32 hex>.…`) that earlier test runs left behind (a
# failed or killed test never deletes its topology). Each quorum queue holds broker file handles,
# and a few hundred leftovers exhaust them: the broker then accepts TCP but never finishes an AMQP
# handshake. A namespace with a consumer on any of its queues belongs to a run in progress and is
# kept. Needs rabbitmqctl (a local broker); otherwise it does nothing.
clean_test_namespaces() {
  if [ -n "${AMQP_URL:-}" ] && [[ "$AMQP_URL" != *"@$PG_HOST:$AMQP_PORT"* ]]; then return 0; fi
  command -v rabbitmqctl >/dev/null || return 0
  local deleted
  deleted=$(timeout 60 rabbitmqctl eval '
    Re = "^(t[0-9a-f]{20,}\\.)",
    Ns = fun(Q) ->
        case re:run(element(4, amqqueue:get_name(Q)), Re, [{capture, all_but_first, binary}]) of
            {match, [N]} -> N;
            nomatch -> none
        end
    end,
    Qs = [{Ns(Q), Q} || Q <- rabbit_amqqueue:list()],
    Busy = lists:usort([N || {N, Q} <- Qs, N =/= none,
        (catch proplists:get_value(consumers, rabbit_amqqueue:info(Q, [consumers]))) =/= 0]),
    Stale = [Q || {N, Q} <- Qs, N =/= none, not lists:member(N, Busy)],
    [catch rabbit_amqqueue:delete(Q, false, false, <<"daikai-tests">>) || Q <- Stale],
    length(Stale).' 2>/dev/null) || return 0
  if [ "${deleted:-0}" != 0 ]; then
    echo "$0: deleted $deleted queues left behind by earlier test runs"
  fi
}
