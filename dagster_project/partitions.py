"""Monthly partitions that grow with the data: a key ``YYYY-MM`` exists once that month's data arrived.

The keys are dynamic (stored in the Dagster instance): the source sensor adds a month when its rows land in
the source folder, ``hybridops run`` adds the months it is asked for. A calendar of months without an end
would list every month up to today (2013 to now) as missing and invite backfills of months that have no
data; these keys are exactly the months there is something to process.
"""

import time

import dagster as dg
from sqlalchemy.exc import IntegrityError

MONTHS = "months"
monthly = dg.DynamicPartitionsDefinition(name=MONTHS)

# Two processes adding the same key at once: one insert wins, the other hits the unique index.
_ADD_ATTEMPTS = 5


def add_months(instance: dg.DagsterInstance, months: list[str]) -> list[str]:
    """Register ``months`` (oldest first) as partitions; returns those that were new.

    Safe against concurrent writers: a lost race on the unique key is retried, then the key is there.
    """
    for attempt in range(_ADD_ATTEMPTS):
        known = set(instance.get_dynamic_partitions(MONTHS))
        new = [month for month in sorted(set(months)) if month not in known]
        if not new:
            return []
        try:
            instance.add_dynamic_partitions(MONTHS, new)
            return new
        except IntegrityError:
            if attempt == _ADD_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return []
