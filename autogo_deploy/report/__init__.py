"""Reports of a profile: JSON document (json_report), self-contained HTML (html), markdown (markdown)."""
