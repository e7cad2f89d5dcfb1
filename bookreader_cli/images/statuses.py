"""The statuses of an image row, defined once (imports nothing, so the store and stats use it cheaply)."""

COMPLETED = "completed"
FAILED = "failed"
STATUSES = (COMPLETED, FAILED)

# The columns of an image row, in the order the store writes them.
IMAGE_ROW_COLUMNS = (
    "description_id",
    "book_id",
    "user",
    "path",
    "sha256",
    "prompt",
    "params",
    "seed",
    "model",
    "source_url",
    "size_bytes",
    "width",
    "height",
    "status",
    "error",
    "generation_time_seconds",
    "created_at",
)
