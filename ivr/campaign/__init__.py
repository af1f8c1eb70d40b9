"""ivr.campaign: import orders, select and segment buyers, plan under a contact policy, dial.

Importing the package registers its schema additions with ``ivr.store.open_db``.
"""

from ivr.campaign import schema as _schema  # noqa: F401  (registers columns and indexes)
