#!/usr/bin/env bash
# `make run`: migrate the embedded database, seed the demo and serve it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
mkdir -p var
# A stable, random secret for the local server, kept out of git under var/.
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s var/secret_key ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
  SECRET_KEY=$(cat var/secret_key)
  export SECRET_KEY
fi
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput >/dev/null
"$PY" manage.py seed_demo
cat <<MSG

  keyscope is serving on http://127.0.0.1:$PORT/
    admin:    http://127.0.0.1:$PORT/admin/
    API docs: http://127.0.0.1:$PORT/api/docs/
  (the demo login and keys are printed above the first time; \`.venv/bin/python manage.py seed_demo --reset\` makes new ones)

MSG
exec .venv/bin/gunicorn backend.wsgi:application \
  --bind "127.0.0.1:$PORT" --workers "${WEB_CONCURRENCY:-2}" --worker-class gthread --threads 4 \
  --timeout 330 --access-logfile -
