"""`python -m gdr_beam.report DIR`: re-renders DIR/report.html from DIR/report.json (e.g. after
editing the JSON, or for a run written by an older version)."""

import sys

from gdr_beam.report.transform import read_report, write_report


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    _, html_path = write_report(read_report(argv[1]), argv[1])
    print(html_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
