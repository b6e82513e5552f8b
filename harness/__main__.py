import sys

try:
    from harness.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python was still importing: nothing started yet
    print("harness: interrupted before the first step", file=sys.stderr)
    sys.exit(1)

main()
