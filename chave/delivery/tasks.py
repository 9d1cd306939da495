"""Background tasks of the delivery app (django-tasks, database backend)."""

from django_tasks import task


@task(queue_name="delivery")
def deliver(message_id: str) -> str:
    from .services import send_message

    return send_message(message_id)
