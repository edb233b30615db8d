"""What this app tells the apps above it, whose rows depend on a deployment or a group (the keys); it imports none of them."""

from django.dispatch import Signal

# Sent by Deployment.clean() and save() (keyword `deployment`) and by DeploymentGroup.clean() and
# save() (keyword `group`) when a stored row is about to change organization, with the row's class
# as sender. Each receiver returns the errors that move would cause, or {}.
organization_changing = Signal()

# Sent (keywords `deployment`, `actor`, `ip_address`) by deployment_delete() inside its transaction,
# before the deployment goes, so what depends on it is removed or changed first, and audited.
deployment_deleting = Signal()

# Sent (keywords `group`, `actor`, `ip_address`) by group_delete() inside its transaction, before the
# group goes: the keys bound to it lose it first, each audited.
group_deleting = Signal()

# Sent (keywords `group`, `action` "created"|"changed"|"deleted", `actor`, `ip_address`, `changes`:
# field -> (old, new)) by the group services inside their transaction. The audit trail lives with
# the keys, above this app: its receiver records the event.
group_written = Signal()
