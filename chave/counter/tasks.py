"""Background tasks of the counter (django-tasks, database backend; run by ``chave worker``)."""

from django_tasks import task


@task(queue_name="default")
def produce_letter(letter_id: str) -> str:
    from .letters import produce

    return produce(letter_id)

