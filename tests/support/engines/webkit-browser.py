#!/usr/bin/python3
# A WebKitGTK browser for WebKitGTK's WebDriver (tests/support/engines/webkit.ts), with a persistent
# profile: MiniBrowser's automation mode keeps every site's data in memory only, so a browser closed
# mid-drain could never be reopened onto the same device. This is MiniBrowser's automation path and
# no more: a web context whose data, cache and cookies live under --profile, automation allowed, and a
# window per web view the driver asks for.
#
#   WebKitWebDriver --port=P  ─launches─▶  webkit-browser.py --automation --profile=DIR
#                                            └─ automation-started ─▶ create-web-view ─▶ window + view
import sys

import gi

gi.require_version('Gtk', '3.0')
gi.require_version('WebKit2', '4.1')
from gi.repository import Gtk, WebKit2  # noqa: E402

profile = next((arg.split('=', 1)[1] for arg in sys.argv if arg.startswith('--profile=')), None)
if profile is None:
    sys.exit('usage: webkit-browser.py --automation --profile=DIR')

manager = WebKit2.WebsiteDataManager(base_data_directory=f'{profile}/data', base_cache_directory=f'{profile}/cache')
manager.get_cookie_manager().set_persistent_storage(f'{profile}/cookies.sqlite', WebKit2.CookiePersistentStorage.SQLITE)
context = WebKit2.WebContext(website_data_manager=manager)
context.set_automation_allowed(True)
windows = []


def new_view(*_args):
    view = WebKit2.WebView(web_context=context, is_controlled_by_automation=True)
    window = Gtk.Window()
    window.set_default_size(412, 915)
    window.add(view)
    window.show_all()
    windows.append(window)

    def closed(_view):
        window.destroy()
        windows.remove(window)
        if not windows:
            Gtk.main_quit()

    view.connect('close', closed)
    return view


def started(_context, session):
    info = WebKit2.ApplicationInfo()
    info.set_name('ferry-webkit')
    info.set_version(1, 0, 0)
    session.set_application_info(info)
    session.connect('create-web-view', new_view)


context.connect('automation-started', started)
Gtk.main()
