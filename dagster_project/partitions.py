"""Monthly partitions over the data's span (2013); keys are month keys ``YYYY-MM``."""

import dagster as dg

monthly = dg.MonthlyPartitionsDefinition(start_date="2013-01", end_date="2014-01", fmt="%Y-%m")
