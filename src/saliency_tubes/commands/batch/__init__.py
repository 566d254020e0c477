"""A whole data set: the videos (``inputs``), one video's explain and index row
(``worker``), the journal, ``index.parquet`` and the summary (``records``), local worker
processes (``local``) or Ray (``ray``), and the command itself (``run``)."""
