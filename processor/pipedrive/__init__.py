"""Pipedrive: the sync stage (sync.py), its HTTP client (client.py), payload mapping and plan (pure)."""

from .sync import SyncReport, run_sync, sync_deals

__all__ = ["SyncReport", "run_sync", "sync_deals"]
