from imagewatchd.cli import main

raise SystemExit(main())
