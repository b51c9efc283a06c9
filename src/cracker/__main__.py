from cracker.cli import main

main()
