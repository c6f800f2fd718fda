"""Services: the orchestration over time that the domain's rules need (submitting and following
jobs and transfers, waiting, polling, purging), written against the domain's ports (TaskRepository,
Scheduler, TransferSystem, StagingStore) with an injected clock. core.domain stays pure rules and
types; core.adapters implement the ports; core.wiring builds these services from them."""
