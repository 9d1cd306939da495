"""Background tasks of the OpenID Connect provider (django-tasks, database backend)."""

from django_tasks import task


@task(queue_name="default")
def send_logout_token(delivery_id: str) -> str:
    """Send one back-channel logout (:func:`chave.oidc.logout.send_backchannel_logout`)."""
    from .logout import send_backchannel_logout

    return send_backchannel_logout(delivery_id)
