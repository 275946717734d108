# Compiles the dashboard (this folder) and, when deploy/setup-deps.sh has fetched it, uPlot
# (third_party/uplot, from npm) into lanlm_coordinator, so the page works offline.
set(dashboard_dir ${CMAKE_CURRENT_SOURCE_DIR}/dashboard)
set(uplot_dir ${PROJECT_SOURCE_DIR}/third_party/uplot)
set(dashboard_assets
  "/index.html=${dashboard_dir}/index.html=text/html|charset=utf-8"
  "/dashboard.js=${dashboard_dir}/dashboard.js=text/javascript|charset=utf-8"
  "/dashboard.css=${dashboard_dir}/dashboard.css=text/css|charset=utf-8")
set(dashboard_files ${dashboard_dir}/index.html ${dashboard_dir}/dashboard.js ${dashboard_dir}/dashboard.css)
if(EXISTS ${uplot_dir}/uPlot.iife.min.js AND EXISTS ${uplot_dir}/uPlot.min.css)
  list(APPEND dashboard_assets "/uPlot.iife.min.js=${uplot_dir}/uPlot.iife.min.js=text/javascript|charset=utf-8"
       "/uPlot.min.css=${uplot_dir}/uPlot.min.css=text/css|charset=utf-8"
       "/uPlot.LICENSE.txt=${uplot_dir}/LICENSE=text/plain|charset=utf-8")
  list(APPEND dashboard_files ${uplot_dir}/uPlot.iife.min.js ${uplot_dir}/uPlot.min.css ${uplot_dir}/LICENSE)
else()
  message(STATUS "uPlot not in third_party/uplot (run deploy/setup-deps.sh): the dashboard shows tables without charts")
endif()
set(dashboard_cc ${CMAKE_CURRENT_BINARY_DIR}/dashboard_assets.cc)
add_custom_command(OUTPUT ${dashboard_cc}
  COMMAND ${CMAKE_COMMAND} "-DOUTPUT=${dashboard_cc}" "-DASSETS=${dashboard_assets}"
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  DEPENDS ${dashboard_files} ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  COMMENT "Embedding the dashboard" VERBATIM)
target_sources(lanlm_coordinator PRIVATE ${dashboard_cc})
