"""Cases shared by several test modules."""

BUILTIN_TABLE = [
    (FileNotFoundError("missing.txt"), "VAL_FILE_NOT_FOUND", "validation", False),
    (PermissionError("denied"), "EXE_PERMISSION_DENIED", "execution", False),
    (MemoryError(), "RES_INSUFFICIENT_MEMORY", "resource", False),
    (TimeoutError("slow"), "EXE_TIMEOUT", "execution", True),
    (ConnectionError("refused"), "NET_CONNECTION_FAILED", "network", True),
    (ValueError("bad"), "VAL_INVALID_VALUE", "validation", False),
    (ImportError("nope"), "EXE_IMPORT_FAILED", "execution", False),
    (RuntimeError("boom"), "SYS_UNKNOWN_ERROR", "system", False),
]
