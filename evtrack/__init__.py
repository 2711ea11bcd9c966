"""evtrack: estimate RDS Per User CAL usage from exported Windows logon event logs."""

from __future__ import annotations

__version__ = "0.1.0"
