"""18.0.1.2.0: incidents say what found them (``source``).

Incidents made before this version came from log scans when they name a log
source; the others keep "Other".
"""


def migrate(cr, version):
    if not version:
        return
    cr.execute("""
        UPDATE auto_heal_incident
           SET source = 'log'
         WHERE log_source_id IS NOT NULL AND source = 'other'
    """)
