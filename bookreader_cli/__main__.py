from bookreader_cli.cli import main

main()
