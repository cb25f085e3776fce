"""Remediation: approval state, authorization, execution and the audit log."""
