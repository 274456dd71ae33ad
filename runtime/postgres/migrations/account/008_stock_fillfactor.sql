-- Reservations and batches rewrite stock rows all day. On full pages (fillfactor 100) each new row version goes to
-- another page and takes a new index entry; with half of each page free it stays on its page (a HOT update, no
-- index entry), even when a reload changes every row once. omsbench, 1M lines on 2 cores: the reload's merge took
-- 7.3 s and wrote 144 MB of WAL instead of 11.9 s and 397 MB, and reservations wrote 42% less WAL. The cost is
-- space: the table takes about twice the pages (the account database of the bench 250 MB instead of 176 MB), not
-- its index. Pages written from now on keep the space
-- (https://www.postgresql.org/docs/15/sql-createtable.html#RELOPTION-FILLFACTOR); pages already full stay so until
-- a rewrite (VACUUM FULL, pg_repack), whose lock a migration does not take.
ALTER TABLE stock SET (fillfactor = 50);
