"""Request traces: the formats memsim reads and writes, and what is computed from them.

Modules: `chunk.py` (TraceChunk, the Op table, key ids), `text.py` (CSV and key-per-line text),
`oracle.py` (libCacheSim's oracleGeneral binary), `io.py` (open_trace, read_keys, write_trace,
FORMATS). Imports nothing of memsim outside sim/.
"""

from memsim.sim.trace.chunk import Op, TraceChunk, concat, key_id
from memsim.sim.trace.io import FORMATS, TraceReader, guess_format, open_trace, read_all, read_keys, write_trace
from memsim.sim.trace.text import CsvColumns

__all__ = ["FORMATS", "CsvColumns", "Op", "TraceChunk", "TraceReader", "concat", "guess_format", "key_id",
           "open_trace", "read_all", "read_keys", "write_trace"]
