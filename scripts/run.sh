#!/usr/bin/env bash
# `make run`: migrate the embedded database, seed the demo and serve it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
# What this script and the server write (.env, the database, var/) is readable by this user only.
umask 077
mkdir -p var
chmod -R go-rwx var  # files an earlier run left readable
# .env (git-ignored) holds the secrets that settings read, so every `manage.py` command run
# from this folder works with nothing exported. Written once; an exported variable wins.
touch .env && chmod go-rwx .env
in_env_file() { grep -Eq "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" .env; }
add_to_env_file() {  # NAME VALUE, on a line of its own
  [ ! -s .env ] || [ -z "$(tail -c 1 .env)" ] || echo >> .env
  echo "$1=$2" >> .env
}
# Each secret, unless exported or in .env already: the one an earlier run kept under var/, else a new one.
if [ -z "${SECRET_KEY:-}" ] && ! in_env_file SECRET_KEY; then
  [ -s var/secret_key ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
  add_to_env_file SECRET_KEY "$(cat var/secret_key)" && rm var/secret_key
fi
# The Fernet key that encrypts upstream credentials.
if [ -z "${KEYSCOPE_ENCRYPTION_KEYS:-}" ] && ! in_env_file KEYSCOPE_ENCRYPTION_KEYS; then
  [ -s var/encryption_key ] || "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > var/encryption_key
  add_to_env_file KEYSCOPE_ENCRYPTION_KEYS "$(cat var/encryption_key)" && rm var/encryption_key
fi
# The demo's http deployment calls scripts/demo_upstream.py; only that loopback port is opened to upstreams.
DEMO_UPSTREAM_PORT=${DEMO_UPSTREAM_PORT:-8001}
export KEYSCOPE_DEMO_UPSTREAM_URL=${KEYSCOPE_DEMO_UPSTREAM_URL:-http://127.0.0.1:$DEMO_UPSTREAM_PORT/}
export KEYSCOPE_UPSTREAM_ALLOWED_HOSTS=${KEYSCOPE_UPSTREAM_ALLOWED_HOSTS:-127.0.0.1:$DEMO_UPSTREAM_PORT}
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput >/dev/null
"$PY" manage.py seed_demo
cat <<MSG

  keyscope is serving on http://127.0.0.1:$PORT/
    admin:    http://127.0.0.1:$PORT/admin/
    API docs: http://127.0.0.1:$PORT/api/docs/
    demo upstream (called by the demo/extract deployment): http://127.0.0.1:$DEMO_UPSTREAM_PORT/
  (the demo login and keys are printed above the first time; \`.venv/bin/python manage.py seed_demo --reset\` makes new ones)

MSG
# It exits with this process, which exec turns into gunicorn.
"$PY" scripts/demo_upstream.py --port "$DEMO_UPSTREAM_PORT" --parent-pid $$ &
# Without Redis, counters and the verification cache live in each process's memory: one process
# (with threads) keeps rate limits, the failed-auth throttle and revocation exact.
WORKERS=${WEB_CONCURRENCY:-2}
if [ -z "${REDIS_URL:-}" ] && ! grep -Eq "^[[:space:]]*(export[[:space:]]+)?REDIS_URL[[:space:]]*=[[:space:]]*[^[:space:]]" .env; then
  WORKERS=1
fi
exec .venv/bin/gunicorn backend.wsgi:application \
  --bind "127.0.0.1:$PORT" --workers "$WORKERS" --worker-class gthread --threads 4 \
  --timeout 330 --access-logfile -
