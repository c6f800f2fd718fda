"""TaskService: the caller's own tasks (get, list, cancel, wait, delete, watch) over the
TaskRepository port. Cancelling a task stops the work behind it through the canceller of its kind
(jobs: JobService.cancel_task, transfers: TransferService.cancel_task); a kind without one is
only marked cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from core.domain.errors import NotFound
from core.domain.tasks import TASK_ID, Task, TaskPage, TaskRepository, TaskState, check_kind

Canceller = Callable[[Task], Awaitable[Task]]


def _task_id(task_id: str) -> str:
    # a malformed id is answered like an unknown one
    if not TASK_ID.match(task_id or ""):
        raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
    return task_id


class TaskService:
    def __init__(self, tasks: TaskRepository, cancellers: Mapping[str, Canceller]):
        self.tasks = tasks
        self.cancellers = cancellers

    async def get(self, user: str, task_id: str) -> Task:
        return await self.tasks.get(user, _task_id(task_id))

    async def list(
        self,
        user: str,
        *,
        state: TaskState | None = None,
        kind: str = "",
        system: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        return await self.tasks.list(
            user,
            state=state,
            kind=check_kind(kind) if kind else None,
            system=system or None,
            page_size=page_size,
            page_token=page_token,
        )

    async def cancel(self, user: str, task_id: str) -> Task:
        """The task after cancelling it (a finished task is answered unchanged)."""
        task = await self.tasks.get(user, _task_id(task_id))
        if not task.done:
            canceller = self.cancellers.get(task.kind)
            if canceller is not None:
                await canceller(task)
            else:
                await self.tasks.cancel(user, task.id)
        return await self.tasks.get(user, task.id)

    async def wait(self, user: str, task_id: str, timeout: float) -> Task:
        return await self.tasks.wait(user, _task_id(task_id), timeout)

    async def delete(self, user: str, task_id: str) -> None:
        await self.tasks.delete(user, _task_id(task_id))

    def watch(self, user: str, task_id: str) -> AsyncIterator[Task]:
        return self.tasks.watch(user, _task_id(task_id))
