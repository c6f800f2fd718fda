from core.proto.firecrest.type.v1 import types_pb2 as _types_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetLivenessRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLivenessResponse(_message.Message):
    __slots__ = ("healthcheck_runs", "last_update")
    class HealthcheckRunsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEALTHCHECK_RUNS_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    healthcheck_runs: _containers.ScalarMap[str, str]
    last_update: float
    def __init__(self, healthcheck_runs: _Optional[_Mapping[str, str]] = ..., last_update: _Optional[float] = ...) -> None: ...

class ListSystemsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSystemsResponse(_message.Message):
    __slots__ = ("systems",)
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    systems: _containers.RepeatedCompositeFieldContainer[HPCCluster]
    def __init__(self, systems: _Optional[_Iterable[_Union[HPCCluster, _Mapping]]] = ...) -> None: ...

class HPCCluster(_message.Message):
    __slots__ = ("name", "ssh", "scheduler", "services_health", "probing", "file_systems", "data_operation", "last_health_check")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SSH_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    SERVICES_HEALTH_FIELD_NUMBER: _ClassVar[int]
    PROBING_FIELD_NUMBER: _ClassVar[int]
    FILE_SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    DATA_OPERATION_FIELD_NUMBER: _ClassVar[int]
    LAST_HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    name: str
    ssh: SSHClientPool
    scheduler: Scheduler
    services_health: _containers.RepeatedCompositeFieldContainer[ServiceHealth]
    probing: ProbingServices
    file_systems: _containers.RepeatedCompositeFieldContainer[FileSystem]
    data_operation: DataOperation
    last_health_check: str
    def __init__(self, name: _Optional[str] = ..., ssh: _Optional[_Union[SSHClientPool, _Mapping]] = ..., scheduler: _Optional[_Union[Scheduler, _Mapping]] = ..., services_health: _Optional[_Iterable[_Union[ServiceHealth, _Mapping]]] = ..., probing: _Optional[_Union[ProbingServices, _Mapping]] = ..., file_systems: _Optional[_Iterable[_Union[FileSystem, _Mapping]]] = ..., data_operation: _Optional[_Union[DataOperation, _Mapping]] = ..., last_health_check: _Optional[str] = ...) -> None: ...

class SSHClientPool(_message.Message):
    __slots__ = ("host", "port", "proxy_host", "proxy_port", "max_clients", "timeout")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROXY_HOST_FIELD_NUMBER: _ClassVar[int]
    PROXY_PORT_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    proxy_host: str
    proxy_port: int
    max_clients: int
    timeout: SSHTimeouts
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., proxy_host: _Optional[str] = ..., proxy_port: _Optional[int] = ..., max_clients: _Optional[int] = ..., timeout: _Optional[_Union[SSHTimeouts, _Mapping]] = ...) -> None: ...

class SSHTimeouts(_message.Message):
    __slots__ = ("connection", "login", "command_execution", "idle_timeout", "keep_alive")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    COMMAND_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    connection: int
    login: int
    command_execution: int
    idle_timeout: int
    keep_alive: int
    def __init__(self, connection: _Optional[int] = ..., login: _Optional[int] = ..., command_execution: _Optional[int] = ..., idle_timeout: _Optional[int] = ..., keep_alive: _Optional[int] = ...) -> None: ...

class Scheduler(_message.Message):
    __slots__ = ("type", "version", "api_url", "api_version", "timeout", "connection_mode")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_URL_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_MODE_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: str
    api_url: str
    api_version: str
    timeout: int
    connection_mode: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[str] = ..., api_url: _Optional[str] = ..., api_version: _Optional[str] = ..., timeout: _Optional[int] = ..., connection_mode: _Optional[str] = ...) -> None: ...

class ServiceHealth(_message.Message):
    __slots__ = ("service_type", "healthy", "last_checked", "latency", "message", "path")
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    healthy: bool
    last_checked: str
    latency: float
    message: str
    path: str
    def __init__(self, service_type: _Optional[str] = ..., healthy: _Optional[bool] = ..., last_checked: _Optional[str] = ..., latency: _Optional[float] = ..., message: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ProbingServices(_message.Message):
    __slots__ = ("interval_check", "services")
    class ServicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ProbingService
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ProbingService, _Mapping]] = ...) -> None: ...
    INTERVAL_CHECK_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    interval_check: int
    services: _containers.MessageMap[str, ProbingService]
    def __init__(self, interval_check: _Optional[int] = ..., services: _Optional[_Mapping[str, ProbingService]] = ...) -> None: ...

class ProbingService(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: int
    def __init__(self, timeout: _Optional[int] = ...) -> None: ...

class FileSystem(_message.Message):
    __slots__ = ("path", "data_type", "default_work_dir")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WORK_DIR_FIELD_NUMBER: _ClassVar[int]
    path: str
    data_type: str
    default_work_dir: bool
    def __init__(self, path: _Optional[str] = ..., data_type: _Optional[str] = ..., default_work_dir: _Optional[bool] = ...) -> None: ...

class DataOperation(_message.Message):
    __slots__ = ("max_ops_file_size", "data_transfer", "datatransfer_jobs_directives")
    MAX_OPS_FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    DATATRANSFER_JOBS_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    max_ops_file_size: float
    data_transfer: _struct_pb2.Struct
    datatransfer_jobs_directives: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_ops_file_size: _Optional[float] = ..., data_transfer: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., datatransfer_jobs_directives: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("system_name",)
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    def __init__(self, system_name: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("name", "hostname", "address", "sockets", "cores", "threads", "cpus", "alloc_cpus", "idle_cpus", "cpu_load", "alloc_memory", "free_memory", "features", "partitions", "state", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SOCKETS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    ALLOC_CPUS_FIELD_NUMBER: _ClassVar[int]
    IDLE_CPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_LOAD_FIELD_NUMBER: _ClassVar[int]
    ALLOC_MEMORY_FIELD_NUMBER: _ClassVar[int]
    FREE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    hostname: str
    address: str
    sockets: int
    cores: int
    threads: int
    cpus: int
    alloc_cpus: int
    idle_cpus: int
    cpu_load: float
    alloc_memory: int
    free_memory: int
    features: _containers.RepeatedScalarFieldContainer[str]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    state: _containers.RepeatedScalarFieldContainer[str]
    weight: int
    def __init__(self, name: _Optional[str] = ..., hostname: _Optional[str] = ..., address: _Optional[str] = ..., sockets: _Optional[int] = ..., cores: _Optional[int] = ..., threads: _Optional[int] = ..., cpus: _Optional[int] = ..., alloc_cpus: _Optional[int] = ..., idle_cpus: _Optional[int] = ..., cpu_load: _Optional[float] = ..., alloc_memory: _Optional[int] = ..., free_memory: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., partitions: _Optional[_Iterable[str]] = ..., state: _Optional[_Iterable[str]] = ..., weight: _Optional[int] = ...) -> None: ...

class ListPartitionsRequest(_message.Message):
    __slots__ = ("system_name", "show_hidden")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SHOW_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    show_hidden: bool
    def __init__(self, system_name: _Optional[str] = ..., show_hidden: _Optional[bool] = ...) -> None: ...

class ListPartitionsResponse(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[Partition]
    def __init__(self, partitions: _Optional[_Iterable[_Union[Partition, _Mapping]]] = ...) -> None: ...

class Partition(_message.Message):
    __slots__ = ("name", "cpus", "total_nodes", "partition")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NODES_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    name: str
    cpus: int
    total_nodes: int
    partition: str
    def __init__(self, name: _Optional[str] = ..., cpus: _Optional[int] = ..., total_nodes: _Optional[int] = ..., partition: _Optional[str] = ...) -> None: ...

class ListReservationsRequest(_message.Message):
    __slots__ = ("system_name",)
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    def __init__(self, system_name: _Optional[str] = ...) -> None: ...

class ListReservationsResponse(_message.Message):
    __slots__ = ("reservations",)
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    reservations: _containers.RepeatedCompositeFieldContainer[Reservation]
    def __init__(self, reservations: _Optional[_Iterable[_Union[Reservation, _Mapping]]] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("name", "state", "features", "node_list", "start_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    NODE_LIST_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    features: str
    node_list: str
    start_time: int
    end_time: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., features: _Optional[str] = ..., node_list: _Optional[str] = ..., start_time: _Optional[int] = ..., end_time: _Optional[int] = ...) -> None: ...

class GetUserInfoRequest(_message.Message):
    __slots__ = ("system_name",)
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    def __init__(self, system_name: _Optional[str] = ...) -> None: ...

class GetUserInfoResponse(_message.Message):
    __slots__ = ("user", "group", "groups", "accounts")
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    user: PosixIdentified
    group: PosixIdentified
    groups: _containers.RepeatedCompositeFieldContainer[PosixIdentified]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    def __init__(self, user: _Optional[_Union[PosixIdentified, _Mapping]] = ..., group: _Optional[_Union[PosixIdentified, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[PosixIdentified, _Mapping]]] = ..., accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ...) -> None: ...

class PosixIdentified(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("name", "default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    default: bool
    def __init__(self, name: _Optional[str] = ..., default: _Optional[bool] = ...) -> None: ...
