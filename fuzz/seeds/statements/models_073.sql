DROP MODEL tiny;;
