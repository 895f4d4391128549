package helper

func platformManager() serviceManager { return launchd{} }
