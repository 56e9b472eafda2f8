"""Suite/task YAML: loading with line marks, frozen pydantic models, validation."""
