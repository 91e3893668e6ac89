from ncalm.cli import main

raise SystemExit(main())
