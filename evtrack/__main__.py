from evtrack.cli import main

main()
