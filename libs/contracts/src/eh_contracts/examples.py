"""The seed design's eight payload examples (event-handler-design.zh.md, section 4), verbatim.

They are the schema's reference: tests check each one validates and is stored field for field,
and the API documentation shows them as request examples.
"""

from typing import Any, Final

SEED_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "node_status": {
        "event": "node_status",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "node-001",
        "data": {
            "old_state": "offline",
            "new_state": "online",
            "reason": "heartbeat_received",
            "details": {"ip": "192.168.1.100", "last_heartbeat": "2024-03-20T10:00:00Z"},
        },
    },
    "node_metrics": {
        "event": "node_metrics",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "node-001",
        "data": {
            "cpu": {"usage": 45.5, "cores": 8, "temperature": 65},
            "memory": {"total": 32768, "used": 16384, "free": 16384},
            "disk": {"total": 512000, "used": 256000, "free": 256000},
            "network": {"in_bytes": 1024000, "out_bytes": 512000, "connections": 100},
            "gpu": {"usage": 30.5, "memory_used": 4096, "temperature": 75},
        },
    },
    "pipeline_status": {
        "event": "pipeline_status",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "pipeline-001",
        "data": {
            "old_status": "running",
            "new_status": "completed",
            "node_id": "node-001",
            "start_time": "2024-03-20T09:00:00Z",
            "end_time": "2024-03-20T10:00:00Z",
            "error": None,
        },
    },
    "pipeline_progress": {
        "event": "pipeline_progress",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "pipeline-001",
        "data": {
            "current_step": 3,
            "total_steps": 5,
            "progress": 60,
            "step_status": {
                "name": "build",
                "status": "running",
                "start_time": "2024-03-20T09:55:00Z",
                "details": {"stage": "compiling", "files_processed": 100},
            },
        },
    },
    "container_status": {
        "event": "container_status",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "container-001",
        "data": {
            "old_state": "running",
            "new_state": "stopped",
            "node_id": "node-001",
            "pipeline_id": "pipeline-001",
            "reason": "task_completed",
            "exit_code": 0,
            "started_at": "2024-03-20T09:00:00Z",
            "finished_at": "2024-03-20T10:00:00Z",
        },
    },
    "container_metrics": {
        "event": "container_metrics",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "container-001",
        "data": {
            "cpu": {"usage": 35.5, "limit": 100, "period": 100000},
            "memory": {"usage": 2048, "limit": 4096, "swap": 0},
            "network": {"rx_bytes": 512000, "tx_bytes": 256000, "rx_packets": 1000, "tx_packets": 500},
            "block_io": {"read_bytes": 1024000, "write_bytes": 512000},
        },
    },
    "system_alert": {
        "event": "system_alert",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "alert-001",
        "data": {
            "level": "warning",
            "category": "resource",
            "title": "High CPU Usage",
            "message": "Node node-001 CPU usage is above 80%",
            "source": "node-001",
            "details": {"threshold": 80, "current_value": 85, "duration": "5m"},
            "actions": [{"type": "scale_up", "target": "node-001", "params": {"cpu_limit": 100}}],
        },
    },
    "system_log": {
        "event": "system_log",
        "timestamp": "2024-03-20T10:00:00Z",
        "resource_id": "log-001",
        "data": {
            "level": "info",
            "component": "pipeline",
            "message": "Pipeline pipeline-001 started",
            "source": "pipeline-001",
            "trace_id": "trace-001",
            "context": {
                "user_id": "user-001",
                "action": "start_pipeline",
                "params": {"node_id": "node-001", "template": "game-build"},
            },
        },
    },
}
