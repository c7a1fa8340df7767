"""The detectors' tables: kinds, their contract, the queries over them."""
