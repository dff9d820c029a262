"""The machinery on a second schema that lives only here (other tables, columns and label)."""
