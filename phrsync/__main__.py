from phrsync.cli import main

main()
