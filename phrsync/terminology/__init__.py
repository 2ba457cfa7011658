"""Code tables for 43-file → MOPH-PHR mapping, every row with its ``source``; see docs/codes.md."""

from phrsync.terminology.tables import (
    CodeTable,
    CodeTableError,
    chronic_group_for_icd10,
    code_set,
    configure,
    configure_from_config,
    get_table,
    list_tables,
    lookup,
    override_dir,
    reset,
    table_names,
)

__all__ = [
    "CodeTable",
    "CodeTableError",
    "chronic_group_for_icd10",
    "code_set",
    "configure",
    "configure_from_config",
    "get_table",
    "list_tables",
    "lookup",
    "override_dir",
    "reset",
    "table_names",
]
