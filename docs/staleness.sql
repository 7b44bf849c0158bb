-- Every host's staleness: the last bank change it applied, the bank's head, how many changes
-- behind it is, and for how many seconds the oldest change it has not applied has waited
-- (NULL when it is up to date). docs/FLEET.md, "Staleness".
SELECT b.host, b.applied, h.value AS head, h.value - b.applied AS behind,
       extract(epoch FROM now()) - (SELECT min(c.made) FROM bank_changes c
                                     WHERE c.seq > b.applied) AS seconds_behind
FROM host_bank b JOIN host_counters h ON h.host = '' AND h.name = 'bank_seq'
ORDER BY b.host;
