#!/usr/bin/env bash
# `make run`: migrate the embedded database, seed the demo and serve it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
# What this script and the server write (var/: the secrets, the database) is readable by this user only.
umask 077
mkdir -p var
chmod -R go-rwx var  # files an earlier run left readable
# A stable, random secret for the local server, kept out of git under var/.
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s var/secret_key ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
  SECRET_KEY=$(cat var/secret_key)
  export SECRET_KEY
fi
# The Fernet key that encrypts upstream credentials, likewise kept under var/.
if [ -z "${KEYSCOPE_ENCRYPTION_KEYS:-}" ]; then
  [ -s var/encryption_key ] || "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > var/encryption_key
  KEYSCOPE_ENCRYPTION_KEYS=$(cat var/encryption_key)
  export KEYSCOPE_ENCRYPTION_KEYS
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
exec .venv/bin/gunicorn backend.wsgi:application \
  --bind "127.0.0.1:$PORT" --workers "${WEB_CONCURRENCY:-2}" --worker-class gthread --threads 4 \
  --timeout 330 --access-logfile -
