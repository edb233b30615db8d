"""What this app tells the apps above it, whose rows depend on a deployment (the keys); it imports none of them."""

from django.dispatch import Signal

# Sent (keyword `deployment`) by Deployment.clean() and save() when a stored deployment is about
# to change organization. Each receiver returns the errors that move would cause, or {}.
organization_changing = Signal()

# Sent (keywords `deployment`, `actor`, `ip_address`) by deployment_delete() inside its transaction,
# before the deployment goes, so what depends on it is removed or changed first, and audited.
deployment_deleting = Signal()
